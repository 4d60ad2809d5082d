// Swagger UI (React) offers no hooks for these, so the rendered page is corrected as it
// changes: WCAG 2.2 AA names for its icon and form controls, keyboard access to code blocks.
"use strict";

const names = [
  [".close-modal", () => "Close dialog"],
  [".copy-to-clipboard button", () => "Copy to clipboard"],
  ["textarea", (el) => (el.closest(".body-param") ? "Request body" : "Value")],
];

const fix = () => {
  for (const [selector, name] of names) {
    for (const el of document.querySelectorAll(`${selector}:not([aria-label])`)) {
      el.setAttribute("aria-label", name(el));
    }
  }
  // Its Authorize buttons are labelled "Apply credentials", which hides the word shown.
  for (const el of document.querySelectorAll('.auth-btn-wrapper [aria-label]')) {
    el.removeAttribute("aria-label");
  }
  // Its Authorize window is a plain <div>: say it is a dialog, named by its heading.
  for (const el of document.querySelectorAll(".modal-ux:not([role])")) {
    const heading = el.querySelector(".modal-ux-header h3");
    if (heading) heading.id = "swagger-dialog-title";
    el.setAttribute("role", "dialog");
    el.setAttribute("aria-modal", "true");
    el.setAttribute("aria-labelledby", "swagger-dialog-title");
  }
  // Code blocks scroll sideways: keyboard users need to reach them.
  for (const el of document.querySelectorAll(".swagger-ui pre:not([tabindex])")) {
    el.setAttribute("tabindex", "0");
  }
};

new MutationObserver(fix).observe(document.body, { childList: true, subtree: true });
