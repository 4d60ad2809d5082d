"""Steps shared by browser tests."""

from pathlib import Path

from django.core import mail

from tests.conftest import PASSWORD

# axe-core 4.14.1 from the npm registry (MPL-2.0, header kept): see tests/vendor/README.md.
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: tags}, resultTypes: ["violations"],
  });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) =>
      `${v.impact} ${v.id}: ${v.help} at ${n.target.join(" ")} (${n.failureSummary})`));
}"""


def login(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/dashboard/")


def last_email_link() -> str:
    body = mail.outbox[-1].body
    return next(word for word in body.split() if word.startswith("http"))


def serious_accessibility_failures(page) -> list[str]:
    """axe-core's WCAG 2.2 AA rules on the page as shown: one line per serious or critical node.

    Needs a page that bypasses CSP (the ``page`` fixture): axe is added as a script tag.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE, WCAG_22_AA)
