// Collapse the sidebar into a menu button on phone-sized screens.
document.addEventListener("DOMContentLoaded", () => {
  const sidebar = document.getElementById("sidebar");
  const toggle = document.querySelector("[data-menu-toggle]");
  if (!sidebar || !toggle) return;
  const small = window.matchMedia("(max-width: 760px)");
  const setOpen = (open) => {
    sidebar.dataset.open = String(open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  setOpen(!small.matches);
  small.addEventListener("change", (e) => setOpen(!e.matches));
  toggle.addEventListener("click", () => setOpen(sidebar.dataset.open !== "true"));
});
