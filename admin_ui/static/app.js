/* keygate admin UI: progressive enhancements only. Every page works without this file. */
(function () {
  "use strict";

  var supportsDialog = typeof HTMLDialogElement === "function" &&
    typeof HTMLDialogElement.prototype.showModal === "function";

  function openDialog(dialog, opener) {
    dialog._opener = opener || document.activeElement;
    dialog.showModal();
    var first = dialog.querySelector("[autofocus]") ||
      dialog.querySelector("input:not([type=hidden]), select, button, a[href]");
    if (first) first.focus();
  }

  function initDialogs() {
    document.querySelectorAll("dialog").forEach(function (dialog) {
      dialog.addEventListener("close", function () {
        if (dialog._opener && typeof dialog._opener.focus === "function") dialog._opener.focus();
      });
      // A click on the backdrop (outside the dialog's box) closes it, like Escape does.
      dialog.addEventListener("click", function (event) {
        if (event.target !== dialog) return;
        var box = dialog.getBoundingClientRect();
        var inside = event.clientX >= box.left && event.clientX <= box.right &&
          event.clientY >= box.top && event.clientY <= box.bottom;
        if (!inside) dialog.close();
      });
    });
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

  function initCreateForm() {
    document.querySelectorAll("#create-form").forEach(function (form) {
      var scope = form.querySelector("select[name=scope]");
      var field = form.querySelector("[data-workspace-field]");
      if (scope && field) {
        var sync = function () {
          var workspace = scope.value === "WORKSPACE";
          field.hidden = !workspace;
          field.querySelector("select").required = workspace;
        };
        scope.addEventListener("change", sync);
        sync();
      }
      form.addEventListener("submit", function () {
        var button = form.querySelector("button[type=submit]");
        if (button) {
          // The one-time nonce already prevents a second key; this just says "working".
          setTimeout(function () { button.disabled = true; button.textContent = "Creating…"; }, 0);
        }
      });
    });
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function initCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var label = button.querySelector("[data-copy-label]") || button;
      var status = document.querySelector(".copy-status");
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
    } else {
      // Without <dialog>, keep the no-JS links and pages.
      document.querySelectorAll("[data-hide-with-js]").forEach(function (el) { el.hidden = false; });
      document.querySelectorAll("button[data-open-dialog]").forEach(function (el) { el.hidden = true; });
    }
    initCreateForm();
    initCopy();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
