// careport's web UI script: the one script every page loads (no framework, no build step).
// Pages are rendered on the server; this file makes their forms and buttons call the JSON API
// (with the session's CSRF token), shows upload and job progress, streams chat answers and
// shows the API's errors in the page's language. It binds to data-* attributes only: the
// content security policy allows no inline script or handler.
"use strict";

(function () {
  const lang = document.body.dataset.lang || "en";
  let catalogue = null;

  function cookie(name) {
    const m = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return m ? decodeURIComponent(m.slice(name.length + 1)) : "";
  }
  const csrf = () => cookie("__Host-careport_csrf");

  // The page language's catalogue, for error messages (fetched once, on the first error).
  async function strings() {
    if (catalogue) return catalogue;
    try {
      const r = await fetch("/api/v1/i18n/" + lang);
      catalogue = r.ok ? (await r.json()).messages || {} : {};
    } catch (_) {
      catalogue = {};
    }
    return catalogue;
  }
  async function t(key, fallback) {
    const s = await strings();
    return s[key] || fallback || key;
  }

  async function errorText(res, body) {
    if (body && body.code) {
      // The API's own message names the field in English; other languages get the code's text.
      if (lang === "en") return body.message || (await t("error." + body.code));
      return await t("error." + body.code, body.message);
    }
    return await t("error.internal", "Something went wrong (" + res.status + ").");
  }

  function show(el, text) {
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
    if (text && el.getAttribute("role") === "alert") el.focus && el.setAttribute("tabindex", "-1");
  }

  // Call the API: JSON in, JSON out, the CSRF header on writes, the page's language.
  async function api(method, url, body, extraHeaders) {
    const headers = Object.assign({ "Accept-Language": lang }, extraHeaders || {});
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    let payload;
    if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    } else {
      payload = body;
    }
    const res = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (res.status === 401 && data && data.code === "token_expired" && url !== "/api/v1/auth/refresh") {
      if (await refresh()) return api(method, url, body, extraHeaders);
    }
    return { res, data };
  }

  async function refresh() {
    if (!csrf()) return false;
    const r = await fetch("/api/v1/auth/refresh", { method: "POST", headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" });
    return r.ok;
  }

  // A form's fields as the API's JSON body: empty optional fields left out, checkboxes named
  // by `data-array` gathered into a list, `data-type="instant"` turned into RFC 3339.
  function formBody(form) {
    const body = {};
    const arrays = (form.dataset.array || "").split(",").filter(Boolean);
    arrays.forEach((a) => (body[a] = []));
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.dataset.local !== undefined || el.type === "file") continue;
      if (arrays.includes(el.name)) {
        if (el.checked) body[el.name].push(el.value);
        continue;
      }
      if (el.type === "checkbox") {
        body[el.name] = el.checked;
        continue;
      }
      if (el.type === "radio") {
        if (el.checked) body[el.name] = el.value;
        continue;
      }
      let v = el.value;
      if (v === "" && el.dataset.keepEmpty === undefined) continue;
      if (el.dataset.type === "instant" && v) v = new Date(v).toISOString();
      body[el.name] = v;
    }
    return body;
  }

  function next(form, data) {
    const target = form.dataset.next;
    if (target) {
      location.assign(target.replace("{id}", data && data.id ? data.id : ""));
      return true;
    }
    if (form.dataset.reload !== undefined) {
      location.reload();
      return true;
    }
    return false;
  }

  async function submitApi(form) {
    const alert = form.querySelector("[data-alert]");
    const ok = form.querySelector("[data-ok]");
    show(alert, "");
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const { res, data } = await api(form.dataset.method || "POST", form.dataset.api, formBody(form));
      if (!res.ok) {
        show(alert, await errorText(res, data));
        return;
      }
      if (form.dataset.showCodes !== undefined && data && data.recovery_codes) {
        const pre = form.querySelector("[data-codes]");
        if (pre) {
          pre.textContent = data.recovery_codes.join("\n");
          pre.hidden = false;
        }
      }
      if (!next(form, data) && ok) {
        show(ok, form.dataset.done ? await t(form.dataset.done, (data && data.message) || "") : (data && data.message) || "✓");
      }
    } catch (e) {
      show(alert, await t("error.unavailable", "The portal could not be reached. Try again."));
    } finally {
      if (button) button.disabled = false;
    }
  }

  // Sign in: the API sets the session cookies; a second factor is asked for when needed.
  async function login(form) {
    const alert = form.querySelector("[data-alert]");
    show(alert, "");
    const body = formBody(form);
    body.use_cookie = true;
    const { res, data } = await api("POST", "/api/v1/auth/login", body);
    if (res.ok) {
      location.assign(form.dataset.next || "/home");
      return;
    }
    if (data && data.code === "mfa_required") {
      const box = form.querySelector("[data-mfa]");
      if (box && box.hidden) {
        box.hidden = false;
        box.querySelector("input").focus();
      }
    }
    show(alert, await errorText(res, data));
  }

  // Progress over a job's WebSocket (OCR and embedding jobs), until it ends.
  function followJob(url, bar, label, done) {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + url);
    ws.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      const job = ev.type === "state" ? ev.job : ev;
      const total = job.pages_total || job.chunks_total || job.total;
      const doneN = job.pages_done || job.chunks_done || job.done;
      if (total && doneN !== undefined && bar) bar.setAttribute("value", Math.round((100 * doneN) / total));
      const status = ev.type === "state" ? job.status : ev.type;
      if (label && status) label.dataset.status = status;
      if (["done", "failed", "cancelled"].includes(status)) {
        if (bar && status === "done") bar.setAttribute("value", 100);
        ws.close();
        done(status, ev);
      }
    };
    ws.onerror = () => done("failed", null);
  }

  // Upload a file (multipart: the fields first, then the file) with a progress bar, then
  // follow the job it starts (OCR of a record, embedding of a knowledge document).
  // "Let careport choose": the record type that best matches the title or the file's name.
  async function guessType(form) {
    const select = form.querySelector("select[name=record_type]");
    const file = form.querySelector("input[type=file]").files[0];
    const title = form.querySelector("input[name=title]");
    // A record needs a title: the file's name, when none was typed.
    if (title && !title.value.trim() && file) title.value = file.name.replace(/\.[^.]+$/, "").slice(0, 200);
    if (!select || select.value) return;
    const text = (title && title.value) || (file ? file.name.replace(/\.[^.]+$/, "").replace(/[-_]+/g, " ") : "");
    if (text) {
      const { res, data } = await api("GET", "/api/v1/record-types/match?q=" + encodeURIComponent(text));
      if (res.ok && data && data.items && data.items.length) select.value = data.items[0].id;
    }
    // Nothing matched: the clinic's catch-all type when it has one, else the question stays open.
    if (!select.value) {
      const other = Array.from(select.options).find((o) => /other/i.test(o.value));
      if (other) select.value = other.value;
    }
  }

  async function upload(form) {
    const alert = form.querySelector("[data-alert]");
    show(alert, "");
    await guessType(form);
    const box = form.querySelector("[data-progress]");
    const bar = box ? box.querySelector("progress") : null;
    const label = box ? box.querySelector("[data-progress-label]") : null;
    const fd = new FormData();
    let file = null;
    for (const el of form.elements) {
      if (!el.name || el.dataset.local !== undefined) continue;
      if (el.type === "file") {
        file = el.files[0];
        continue;
      }
      if (el.value !== "") fd.append(el.name, el.value);
    }
    if (!file) return;
    fd.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.upload);
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.setRequestHeader("Accept-Language", lang);
    if (box) box.hidden = false;
    if (bar) bar.setAttribute("value", 0);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && bar) bar.setAttribute("value", Math.round((100 * e.loaded) / e.total));
    };
    xhr.onload = async () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch (_) {
        data = null;
      }
      if (xhr.status < 200 || xhr.status >= 300) {
        if (box) box.hidden = true;
        show(alert, await errorText({ status: xhr.status }, data));
        return;
      }
      if (bar) bar.setAttribute("value", 100);
      const ocr = form.querySelector("input[name=ocr]");
      let job = null;
      let events = null;
      if (form.dataset.job === "knowledge" && data.job_id) {
        job = data.job_id;
        events = "/api/v1/knowledge/jobs/" + job + "/events";
      } else if (ocr && ocr.checked) {
        job = data.ocr_job_id;
        if (!job) {
          const r = await api("POST", "/api/v1/records/" + data.id + "/ocr", {});
          if (r.res.ok && r.data) job = r.data.job_id;
        }
        if (job) events = "/api/v1/ocr/jobs/" + job + "/events";
      }
      if (!events) {
        next(form, data);
        return;
      }
      if (label) label.textContent = await t(form.dataset.job === "knowledge" ? "knowledge.indexing" : "records.reading", "…");
      if (bar) bar.setAttribute("value", 0);
      followJob(events, bar, label, async (status) => {
        if (status !== "done") show(alert, await t("records.job_" + status, status));
        next(form, data);
      });
    };
    xhr.onerror = async () => show(alert, await t("error.unavailable", "The upload failed."));
    xhr.send(fd);
  }

  // Ask for OCR of a record already stored, and follow it.
  async function ocr(form) {
    const alert = form.querySelector("[data-alert]");
    const box = form.querySelector("[data-progress]");
    const bar = box ? box.querySelector("progress") : null;
    const { res, data } = await api("POST", form.dataset.ocr, {});
    if (!res.ok) {
      show(alert, await errorText(res, data));
      return;
    }
    if (box) box.hidden = false;
    followJob("/api/v1/ocr/jobs/" + data.job_id + "/events", bar, null, () => location.reload());
  }

  // Weekly hours: one span a day from the table's rows.
  async function hours(form) {
    const alert = form.querySelector("[data-alert]");
    const items = [];
    form.querySelectorAll("tr[data-weekday]").forEach((row) => {
      const s = row.querySelector("input[name=start]").value;
      const e = row.querySelector("input[name=end]").value;
      if (s && e) {
        const min = (v) => parseInt(v.slice(0, 2), 10) * 60 + parseInt(v.slice(3, 5), 10);
        items.push({ weekday: parseInt(row.dataset.weekday, 10), start_minute: min(s), end_minute: min(e) });
      }
    });
    const { res, data } = await api("PUT", form.dataset.hours, { hours: items });
    if (!res.ok) {
      show(alert, await errorText(res, data));
      return;
    }
    next(form, data);
  }

  // MFA enrolment: the secret and its QR code (drawn by the server from the POSTed URI).
  async function mfaEnrol(form) {
    const alert = form.querySelector("[data-alert]");
    const { res, data } = await api("POST", "/api/v1/auth/mfa/enrol", formBody(form));
    if (!res.ok) {
      show(alert, await errorText(res, data));
      return;
    }
    const step = document.querySelector("[data-mfa-step]");
    step.querySelector("[data-mfa-secret]").textContent = data.secret;
    const qr = await fetch("/ui/qr", { method: "POST", headers: { "X-CSRF-Token": csrf() }, body: data.otpauth_uri, credentials: "same-origin" });
    if (qr.ok) step.querySelector("[data-mfa-qr]").src = URL.createObjectURL(await qr.blob());
    form.hidden = true;
    step.hidden = false;
    step.querySelector("input").focus();
  }

  // A plugin: manifest and module files, sent as the API's JSON.
  async function pluginUpload(form) {
    const alert = form.querySelector("[data-alert]");
    const manifest = await form.querySelector("input[name=manifest]").files[0].text();
    const buf = new Uint8Array(await form.querySelector("input[name=module]").files[0].arrayBuffer());
    let bin = "";
    for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    const { res, data } = await api("POST", form.dataset.pluginUpload, { manifest, module_base64: btoa(bin) });
    if (!res.ok) {
      show(alert, await errorText(res, data));
      return;
    }
    next(form, data);
  }

  // The assistant: answers stream over the session's WebSocket.
  function chat(form) {
    const list = document.querySelector("[data-messages]");
    const status = form.querySelector("[data-chat-status]");
    const alert = form.querySelector("[data-alert]");
    const cancel = form.querySelector("[data-cancel]");
    const textarea = form.querySelector("textarea");
    let ws = null;
    let current = null;
    let queue = [];
    function connect() {
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + form.dataset.chat);
      ws.onopen = () => {
        queue.forEach((m) => ws.send(m));
        queue = [];
      };
      ws.onmessage = (m) => handle(JSON.parse(m.data));
      ws.onclose = () => {
        ws = null;
        cancel.hidden = true;
      };
    }
    function send(obj) {
      const text = JSON.stringify(obj);
      if (ws && ws.readyState === 1) ws.send(text);
      else {
        queue.push(text);
        if (!ws) connect();
      }
    }
    function bubble(role, text) {
      const li = document.createElement("li");
      li.className = "msg msg-" + role;
      li.setAttribute("dir", "auto");
      const body = document.createElement("div");
      body.className = "body";
      body.textContent = text;
      li.appendChild(body);
      list.appendChild(li);
      li.scrollIntoView({ block: "end" });
      return li;
    }
    async function handle(ev) {
      if (ev.type === "start") {
        current = bubble("assistant", "");
        current.setAttribute("dir", ev.direction || "auto");
        current.setAttribute("aria-busy", "true");
        status.textContent = await t("chat.answering", "…");
        cancel.hidden = false;
      } else if (ev.type === "token" && current) {
        current.querySelector(".body").textContent += ev.text;
      } else if (ev.type === "tool") {
        status.textContent = ev.name + "…";
      } else if (ev.type === "confirm") {
        const tpl = document.querySelector("[data-confirm-template]");
        const box = tpl.content.firstElementChild.cloneNode(true);
        box.querySelector("[data-confirm-text]").textContent = ev.action + ": " + JSON.stringify(ev.details);
        box.querySelector("[data-confirm-yes]").onclick = () => {
          send({ type: "confirm", id: ev.id, accept: true });
          box.remove();
        };
        box.querySelector("[data-confirm-no]").onclick = () => {
          send({ type: "confirm", id: ev.id, accept: false });
          box.remove();
        };
        list.appendChild(box);
      } else if (ev.type === "done") {
        if (current) {
          current.removeAttribute("aria-busy");
          if (ev.citations && ev.citations.length) {
            const ol = document.createElement("ol");
            ol.className = "citations";
            ev.citations.forEach((c) => {
              const li = document.createElement("li");
              const a = document.createElement("a");
              a.href = "/passages/" + c.document_id + "?start=" + c.start + "&end=" + c.end;
              a.dataset.citation = "";
              a.textContent = c.title;
              li.appendChild(a);
              ol.appendChild(li);
            });
            current.appendChild(ol);
          }
        }
        current = null;
        status.textContent = "";
        cancel.hidden = true;
        if (ev.suggestions) chips(ev.suggestions.map((s) => s.text));
      } else if (ev.type === "error") {
        show(alert, lang === "en" ? ev.message : await t("error." + ev.code, ev.message));
        status.textContent = "";
      }
    }
    function chips(texts) {
      let box = document.querySelector("[data-suggestions]");
      if (!box) return;
      box.replaceChildren();
      texts.forEach((text) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chip";
        b.dataset.suggest = "";
        b.textContent = text;
        box.appendChild(b);
      });
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = textarea.value.trim();
      if (!text) return;
      show(alert, "");
      bubble("user", text);
      send({ type: "message", text });
      textarea.value = "";
    });
    cancel.addEventListener("click", () => send({ type: "cancel" }));
    document.addEventListener("click", (e) => {
      const chip = e.target.closest("[data-suggest]");
      if (chip) {
        textarea.value = chip.textContent;
        form.requestSubmit();
      }
    });
    connect();
  }

  async function buttonCall(btn, method, url, body) {
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    btn.disabled = true;
    const { res, data } = await api(method, url, body);
    btn.disabled = false;
    if (!res.ok) {
      window.alert(await errorText(res, data));
      return;
    }
    if (btn.dataset.next) location.assign(btn.dataset.next);
    else if (btn.dataset.reload !== undefined) location.reload();
  }

  document.addEventListener("submit", (e) => {
    const f = e.target;
    const handlers = [
      ["login", login],
      ["api", submitApi],
      ["upload", upload],
      ["ocr", ocr],
      ["hours", hours],
      ["mfaEnrol", mfaEnrol],
      ["pluginUpload", pluginUpload],
    ];
    for (const [key, fn] of handlers) {
      if (f.dataset[key] !== undefined) {
        e.preventDefault();
        fn(f);
        return;
      }
    }
  });

  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.signout !== undefined) {
      const all = b.dataset.signout === "all";
      await api("POST", "/api/v1/auth/logout", all ? { all_sessions: true } : undefined);
      location.assign("/login");
    } else if (b.dataset.delete) {
      buttonCall(b, "DELETE", b.dataset.delete);
    } else if (b.dataset.post) {
      buttonCall(b, "POST", b.dataset.post, {});
    } else if (b.dataset.patch) {
      buttonCall(b, "PATCH", b.dataset.patch, JSON.parse(b.dataset.body || "{}"));
    } else if (b.dataset.share) {
      const { res, data } = await api("POST", b.dataset.share, { expires_in: 86400 });
      const out = document.querySelector("[data-share-out]");
      if (res.ok) show(out, location.origin + data.url);
      else window.alert(await errorText(res, data));
    } else if (b.dataset.back !== undefined) {
      history.back();
    }
  });

  // The sign-in page: a session whose access token lapsed is renewed without a password.
  const loginForm = document.querySelector("form[data-login]");
  if (loginForm && csrf()) {
    refresh().then((ok) => {
      if (ok) location.assign(loginForm.dataset.next || "/home");
    });
  }
  const chatForm = document.querySelector("form[data-chat]");
  if (chatForm) chat(chatForm);
  const cited = document.getElementById("cited");
  if (cited) cited.focus();
})();
