/* keygate admin UI: progressive enhancements only. Every page works without this file. */
(function () {
  "use strict";

  var supportsDialog = typeof HTMLDialogElement === "function" &&
    typeof HTMLDialogElement.prototype.showModal === "function";

  var FOCUSABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), " +
    "select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function focusables(root) {
    return Array.prototype.filter.call(root.querySelectorAll(FOCUSABLE), function (el) {
      return !el.closest("[hidden]") && el.getClientRects().length > 0;
    });
  }

  function openDialog(dialog, opener) {
    dialog._opener = opener || document.activeElement;
    dialog.showModal();
    var first = dialog.querySelector("[autofocus]") || focusables(dialog)[0];
    if (first) first.focus();
  }

  // Chromium's modal dialog lets Tab leave the page (to the browser's own controls); keep it
  // cycling through the dialog's controls instead, as the WAI-ARIA dialog pattern asks.
  function trapFocus(dialog, event) {
    if (event.key !== "Tab" || event.altKey || event.ctrlKey || event.metaKey) return;
    var items = focusables(dialog);
    if (!items.length) return;
    var first = items[0];
    var last = items[items.length - 1];
    var inside = dialog.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }

  function initDialog(dialog) {
    dialog.addEventListener("keydown", function (event) { trapFocus(dialog, event); });
    dialog.addEventListener("close", function () {
      if (dialog._opener && typeof dialog._opener.focus === "function") dialog._opener.focus();
    });
    // A click on the backdrop (outside the dialog's box) closes it, like Escape does; not for
    // a dialog marked data-keep-open (the reveal: closing it by accident loses the key).
    dialog.addEventListener("click", function (event) {
      if (event.target !== dialog || dialog.hasAttribute("data-keep-open")) return;
      var box = dialog.getBoundingClientRect();
      var inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
  }

  function initDialogs() {
    document.querySelectorAll("dialog").forEach(initDialog);
    document.addEventListener("click", function (event) {
      var closer = event.target.closest("[data-close-dialog]");
      if (closer) {
        var dialog = closer.closest("dialog");
        if (dialog) dialog.close();
        return;
      }
      var opener = event.target.closest("[data-open-dialog]");
      if (!opener) return;
      var target = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (!target) return;
      event.preventDefault();
      openDialog(target, opener);
    });
  }

  function initProgressiveControls() {
    document.querySelectorAll("[data-hide-with-js]").forEach(function (el) { el.hidden = true; });
    document.querySelectorAll("button[data-open-dialog][hidden]").forEach(function (el) { el.hidden = false; });
  }

  function initRevoke() {
    var dialog = document.getElementById("revoke-dialog");
    var confirm = document.getElementById("revoke-confirm");
    if (!dialog || !confirm) return;
    var pending = null;
    document.querySelectorAll("form.revoke-form").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        pending = form;
        dialog.querySelector("[data-token-name]").textContent = "“" + form.dataset.tokenName + "”";
        dialog.querySelector("[data-token-start]").textContent = form.dataset.tokenStart || "this key";
        openDialog(dialog, event.submitter || form.querySelector("button"));
      });
    });
    confirm.addEventListener("click", function () {
      if (!pending) return;
      var csrf = pending.querySelector("input[name=csrf]");
      if (csrf) csrf.disabled = false;
      confirm.disabled = true;
      confirm.textContent = "Revoking…";
      // form.submit() uses the form's own method (POST), not the button's GET fallback.
      pending.submit();
    });
  }

  function syncWorkspaceField(form) {
    var scope = form.querySelector("select[name=scope]");
    var field = form.querySelector("[data-workspace-field]");
    if (!scope || !field) return;
    var sync = function () {
      var workspace = scope.value === "WORKSPACE";
      field.hidden = !workspace;
      field.querySelector("select").required = workspace;
    };
    scope.addEventListener("change", sync);
    sync();
  }

  function setBusy(form, busy) {
    var button = form.querySelector("button[type=submit]");
    if (!button) return;
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.disabled = busy;
    button.textContent = busy ? "Creating…" : button.dataset.label;
  }

  function initCreateForm(form) {
    syncWorkspaceField(form);
    var dialog = form.closest("dialog#create-dialog");
    var reveal = document.getElementById("reveal-dialog");
    var inline = dialog && reveal && supportsDialog && window.fetch && window.DOMParser;
    form.addEventListener("submit", function (event) {
      if (!inline) {
        // The one-time nonce already prevents a second key; this just says "working".
        setTimeout(function () { setBusy(form, true); }, 0);
        return;
      }
      event.preventDefault();
      if (form.dataset.busy) return;
      form.dataset.busy = "1";
      setBusy(form, true);
      submitInline(form, dialog, reveal);
    });
  }

  // The create form, posted from the dialog: the answer is the same HTML the no-JS page gets.
  // Its #reveal section moves into the reveal dialog; a form with errors replaces this one.
  // Nothing of the answer reaches the URL, the history or any storage.
  function submitInline(form, dialog, reveal) {
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      cache: "no-store",
      redirect: "follow",
    }).then(function (response) {
      if (response.redirected) {
        window.location.assign(response.url);
        return null;
      }
      return response.text().then(function (html) {
        var answer = new DOMParser().parseFromString(html, "text/html");
        var section = answer.getElementById("reveal");
        var again = answer.getElementById("create-form");
        if (section) showReveal(section, dialog, reveal);
        else if (again) replaceForm(form, again);
        else showPage(answer);
      });
    }).catch(function () {
      delete form.dataset.busy;
      setBusy(form, false);
      showFormError(form, "keygate could not be reached. Check your connection and try again.");
    });
  }

  function showFormError(form, message) {
    var banner = form.querySelector(".error-banner");
    if (!banner) {
      banner = document.createElement("div");
      banner.className = "error-banner";
      banner.setAttribute("role", "alert");
      form.insertBefore(banner, form.querySelector(".field"));
    }
    banner.textContent = message;
  }

  function replaceForm(form, again) {
    var fresh = document.importNode(again, true);
    // The no-JS page's Cancel is a link to the list; in the dialog, Cancel closes the dialog.
    var ownCancel = form.querySelector("[data-close-dialog]");
    var pageCancel = fresh.querySelector(".form-actions a.button");
    if (ownCancel && pageCancel) pageCancel.replaceWith(ownCancel);
    form.replaceWith(fresh);
    initCreateForm(fresh);
    var invalid = fresh.querySelector("[aria-invalid=true]") ||
      fresh.querySelector(".field-invalid input, .field-invalid select") ||
      fresh.querySelector("input[name=name]");
    if (invalid) invalid.focus();
  }

  function showReveal(section, createDialog, reveal) {
    var opener = createDialog._opener;
    createDialog._opener = null;
    createDialog.close();
    var moved = document.importNode(section, true);
    moved.className = "reveal";
    var title = moved.querySelector("h1");
    if (title) {
      // The list page already has its h1; in the dialog the key's title is a section heading.
      var heading = document.createElement("h2");
      heading.id = title.id;
      heading.innerHTML = title.innerHTML;
      title.replaceWith(heading);
    }
    var warning = moved.querySelector(".warning");
    if (warning) {
      warning.id = "reveal-warning";
      reveal.setAttribute("aria-describedby", warning.id);
    }
    reveal.replaceChildren(moved);
    initCopy(moved);
    openDialog(reveal, opener);
  }

  // Escape must not throw the key away: the reveal closes only with "I have stored it".
  function initRevealDialog() {
    var reveal = document.getElementById("reveal-dialog");
    if (!reveal) return;
    var keep = function (event) {
      if (!reveal.querySelector("#token-value")) return;
      event.preventDefault();
      var status = reveal.querySelector(".copy-status");
      if (status) status.textContent = "The key is shown only once. Copy it, then choose “Done — I have stored it safely”.";
    };
    reveal.addEventListener("cancel", keep);
    reveal.addEventListener("keydown", function (event) { if (event.key === "Escape") keep(event); });
    reveal.addEventListener("close", function () {
      // A browser may still close a modal on a repeated Escape (its close-watcher rules).
      if (reveal.querySelector("#token-value")) reveal.showModal();
    });
    // Leaving the page (Done, a link, a reload) wipes the key, so Back never shows it again
    // from the back/forward cache; a page restored from there reloads to list the new key.
    var wiped = false;
    window.addEventListener("pagehide", function () {
      if (!reveal.open) return;
      wiped = true;
      reveal.replaceChildren();
      reveal.close();
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && wiped) window.location.reload();
    });
  }

  function showPage(answer) {
    var main = document.getElementById("main");
    var theirs = answer.getElementById("main");
    if (!main || !theirs) {
      window.location.reload();
      return;
    }
    document.querySelectorAll("dialog[open]").forEach(function (d) { d.close(); });
    main.replaceChildren.apply(main, Array.prototype.map.call(theirs.childNodes, function (n) {
      return document.importNode(n, true);
    }));
    document.title = answer.title;
    main.focus();
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function initCopy(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var label = button.querySelector("[data-copy-label]") || button;
      var status = root.querySelector(".copy-status");
      var timer = null;
      function done(ok) {
        clearTimeout(timer);
        if (ok) {
          label.textContent = "Copied";
          button.classList.add("is-copied");
          if (status) status.textContent = "Copied to the clipboard.";
          timer = setTimeout(function () {
            label.textContent = "Copy";
            button.classList.remove("is-copied");
          }, 2500);
        } else {
          selectText(source);
          if (status) status.textContent = "Press Ctrl+C (⌘C on a Mac) to copy the selected key.";
        }
      }
      button.addEventListener("click", function () {
        var text = source.textContent.trim();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
          return;
        }
        selectText(source);
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok);
      });
    });
  }

  function init() {
    initProgressiveControls();
    if (supportsDialog) {
      initDialogs();
      initRevoke();
      initRevealDialog();
    } else {
      // Without <dialog>, keep the no-JS links and pages.
      document.querySelectorAll("[data-hide-with-js]").forEach(function (el) { el.hidden = false; });
      document.querySelectorAll("button[data-open-dialog]").forEach(function (el) { el.hidden = true; });
    }
    document.querySelectorAll("#create-form").forEach(initCreateForm);
    initCopy(document);
    // A list that reloads after Done, a revoke or a People action starts keyboard and
    // screen-reader users at the message saying what happened, not at the top of the page.
    var told = document.querySelector("[data-focus-on-load]");
    if (told) told.focus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
