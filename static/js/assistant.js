// The Assistant page: sends the question to the stream endpoint and draws what comes
// back as it arrives (Server-Sent Events over fetch, read line by line). Model text is
// only ever set as textContent; the finished answer's HTML comes sanitised by the server.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("[data-ask-form]");
  if (!form) return;
  const log = document.querySelector("[data-chat-log]");
  const prompt = form.querySelector("textarea");
  const send = form.querySelector("[data-send]");
  const status = form.querySelector("[data-status]");
  const csrf = form.dataset.csrf;
  let sessionId = form.dataset.sessionId || "";

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const scrollDown = () => { log.scrollTop = log.scrollHeight; };
  const mode = () => form.querySelector("input[name=mode]:checked").value;
  const busy = (on, words) => {
    send.disabled = on;
    prompt.disabled = on;
    status.textContent = words || "";
  };

  // --- Sessions drawer (phones) --------------------------------------------------------
  const drawer = document.getElementById("assistant-sessions");
  const drawerToggle = document.querySelector("[data-sessions-toggle]");
  drawerToggle.addEventListener("click", () => {
    const open = drawer.dataset.open !== "true";
    drawer.dataset.open = String(open);
    drawerToggle.setAttribute("aria-expanded", String(open));
  });

  const rememberSession = (session) => {
    if (!session || sessionId === String(session.id)) return;
    sessionId = String(session.id);
    history.replaceState(null, "", session.url);
    const list = document.querySelector("[data-session-list]");
    list.querySelectorAll("li.current").forEach((li) => li.classList.remove("current"));
    const item = el("li", "current");
    const link = el("a");
    link.href = session.url;
    link.setAttribute("aria-current", "page");
    link.append(el("span", "session-title", session.title), el("time", "", "just now"));
    const remove = el("a", "session-delete", "✕");
    remove.href = session.deleteUrl;
    remove.title = "Delete";
    remove.setAttribute("aria-label", `Delete “${session.title}”`);
    item.append(link, remove);
    list.prepend(item);
    document.querySelector("[data-sessions-empty]").hidden = true;
  };

  // --- Drawing turns -------------------------------------------------------------------
  const pretty = (value) => {
    if (typeof value === "string") {
      try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
    }
    return JSON.stringify(value, null, 2);
  };

  const stepNode = (name, args) => {
    const step = el("details", "step running");
    const summary = el("summary");
    summary.append(el("span", "step-name", name), el("span", "step-meta", "running…"));
    const body = el("div", "step-body");
    body.append(el("h4", "", "Arguments"), el("pre", "", pretty(args)));
    step.append(summary, body);
    return step;
  };

  const finishStep = (step, call) => {
    step.classList.remove("running");
    const meta = step.querySelector(".step-meta");
    meta.textContent = call.error ? `failed · ${call.durationMs} ms` : `${call.durationMs} ms`;
    const body = step.querySelector(".step-body");
    if (call.error) {
      step.classList.add("failed");
      body.append(el("h4", "", "Error"), el("pre", "step-error", call.error));
    } else {
      body.append(el("h4", "", "Result"), el("pre", "", call.result || "(nothing)"));
    }
  };

  const addStep = (turn, call) => {
    const step = stepNode(call.name, call.arguments);
    finishStep(step, call);
    turn.steps.append(step);
  };

  const newTurn = (question) => {
    const empty = log.querySelector("[data-chat-empty]");
    if (empty) empty.remove();
    const user = el("article", "turn turn-user");
    user.append(el("h3", "visually-hidden", "You"), el("div", "bubble", question));
    const kay = el("article", "turn turn-assistant");
    const steps = el("div", "steps");
    const answer = el("div", "answer streaming");
    kay.append(el("h3", "visually-hidden", "Kay"), steps, answer);
    log.append(user, kay);
    scrollDown();
    return { node: kay, steps, answer, question, text: "", shown: 0, open: [] };
  };

  const showError = (turn, error) => {
    turn.answer.classList.remove("streaming");
    const box = el("div", "alert alert-error chat-error");
    box.setAttribute("role", "alert");
    box.append(el("p", "", error.message || "Something went wrong: try again."));
    if (error.links && error.links.length) {
      const links = el("p", "error-links");
      error.links.forEach((link) => {
        const a = el("a", "btn btn-small", link.label);
        a.href = link.url;
        links.append(a);
      });
      box.append(links);
    }
    turn.node.append(box);
    scrollDown();
  };

  const showPending = (turn, body) => {
    turn.answer.classList.remove("streaming");
    const box = el("div", "pending");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Action waiting for your approval");
    box.append(el("p", "pending-title", "Kay asks before it changes anything"));
    box.append(el("p", "pending-what", body.message));
    const details = el("details", "pending-details");
    details.append(el("summary", "", `Exactly what runs: ${body.data.action.tool}`));
    details.append(el("pre", "", pretty(body.data.action.arguments)));
    const actions = el("div", "actions");
    const approve = el("button", "btn-primary", "Approve");
    const cancel = el("button", "btn-secondary", "Cancel");
    approve.type = cancel.type = "button";
    actions.append(approve, cancel);
    box.append(details, actions);
    turn.node.append(box);
    scrollDown();
    const decide = async (approved) => {
      approve.disabled = cancel.disabled = true;
      busy(true, approved ? "Running the approved action…" : "Cancelling…");
      try {
        const response = await fetch(form.dataset.confirmUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
          body: JSON.stringify({ confirmation_token: body.confirmation_token, approved }),
        });
        const result = await response.json().catch(() => ({}));
        box.remove();
        if (!response.ok) {
          showError(turn, result.error || { message: `The request failed (HTTP ${response.status}).` });
        } else {
          finish(turn, result, approved ? "Approved." : "Cancelled.");
        }
      } catch {
        approve.disabled = cancel.disabled = false;
        showError(turn, { message: "Kay could not be reached: check your connection and try again." });
      } finally {
        busy(false);
      }
    };
    approve.addEventListener("click", () => decide(true));
    cancel.addEventListener("click", () => decide(false));
    approve.focus();
  };

  // A finished body (/ask's): steps not drawn yet, then the answer or the pending action.
  const finish = (turn, body, note) => {
    const calls = (body.data && body.data.toolCalls) || [];
    calls.slice(turn.shown).forEach((call) => addStep(turn, call));
    turn.shown = calls.length;
    if (body.session) rememberSession(body.session);
    else if (body.session_id) {
      // /ask/confirm's body names the conversation an approved turn was saved to.
      const id = String(body.session_id);
      rememberSession({
        id,
        title: turn.question.split(/\s+/).join(" ").trim().slice(0, 80),
        url: form.dataset.sessionUrl.replace("/0/", `/${id}/`),
        deleteUrl: form.dataset.sessionDeleteUrl.replace("/0/", `/${id}/`),
      });
    }
    if (body.status === "pending_confirmation") {
      showPending(turn, body);
      return;
    }
    turn.answer.classList.remove("streaming");
    if (note) turn.answer.before(el("p", "turn-note muted", note));
    if (body.html !== undefined) {
      // Sanitised on the server (markdown-it with raw HTML off, then nh3).
      const answer = el("div", "answer");
      answer.innerHTML = body.html;
      turn.answer.replaceWith(answer);
      turn.answer = answer;
    } else {
      // /ask/confirm answers in plain text: shown as text, its line breaks kept.
      turn.answer.classList.add("plain");
      turn.answer.textContent = body.data.response || body.message;
    }
    scrollDown();
  };

  const onEvent = (turn, event, data) => {
    if (event === "text") {
      turn.text += data.delta;
      turn.answer.textContent = turn.text;
    } else if (event === "tool_start") {
      const step = stepNode(data.name, data.arguments);
      turn.open.push(step);
      turn.steps.append(step);
      status.textContent = `Using ${data.name}…`;
    } else if (event === "tool_end") {
      const step = turn.open.shift();
      if (step) {
        finishStep(step, data);
        turn.shown += 1;
      }
      status.textContent = "Thinking…";
    } else if (event === "done") {
      // The stream showed steps as they ran; the body has the authoritative list.
      turn.steps.replaceChildren();
      turn.shown = 0;
      finish(turn, data);
    } else if (event === "error") {
      showError(turn, data);
    }
    scrollDown();
  };

  // --- Sending -------------------------------------------------------------------------
  const ask = async (question) => {
    const turn = newTurn(question);
    busy(true, "Thinking…");
    const chosen = mode();
    try {
      const response = await fetch(form.dataset.streamUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "text/event-stream" },
        body: JSON.stringify({
          prompt: question,
          mode: chosen,
          session_id: chosen === "one_shot" || !sessionId ? null : Number(sessionId),
        }),
      });
      const type = response.headers.get("Content-Type") || "";
      if (!type.startsWith("text/event-stream")) {
        const body = await response.json().catch(() => null);
        const error = (body && body.error) || {
          message: response.redirected ? "You were signed out: reload the page and sign in again." : `The request failed (HTTP ${response.status}).`,
        };
        if (error.fields) error.message = Object.values(error.fields).flat().join(" ") || error.message;
        showError(turn, error);
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let ended = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          let data = "";
          block.split("\n").forEach((line) => {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          });
          if (event === "done" || event === "error") ended = true;
          onEvent(turn, event, data ? JSON.parse(data) : {});
        }
      }
      if (!ended) showError(turn, { message: "The answer was cut off: try again." });
    } catch {
      showError(turn, { message: "Kay could not be reached: check your connection and try again." });
    } finally {
      busy(false);
      prompt.focus();
    }
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const question = prompt.value.trim();
    if (!question || send.disabled) return;
    prompt.value = "";
    ask(question);
  });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  log.addEventListener("click", (e) => {
    const example = e.target.closest("[data-example]");
    if (!example) return;
    prompt.value = example.textContent;
    prompt.focus();
  });
  form.querySelectorAll("input[name=mode]").forEach((radio) => {
    radio.addEventListener("change", () => {
      status.textContent = radio.closest("label").querySelector(".mode-help").textContent;
    });
  });
  scrollDown();
});
