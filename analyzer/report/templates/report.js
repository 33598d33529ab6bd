(function () {
  "use strict";
  var root = document.documentElement;
  var errors = window.__reportErrors || [];
  var shown = 0;

  function flushErrors() {
    var list = document.getElementById("js-errors");
    for (; list && shown < errors.length; shown++) {
      var item = document.createElement("li");
      item.textContent = errors[shown];
      list.appendChild(item);
      list.hidden = false;
    }
    root.setAttribute("data-errors", String(errors.length));
  }

  function record(message) {
    errors.push(message);
    flushErrors();
  }

  window.addEventListener("error", function () { flushErrors(); });
  document.addEventListener("securitypolicyviolation", function () { flushErrors(); });

  // The view: a namespace filter and, optionally, one identity in focus (clicked or Enter).
  var state = { ns: "", focus: null };

  function applyView(data) {
    // Values are compared as strings; nothing from the data is ever parsed as HTML or used to
    // build a selector.
    var ns = state.ns;
    var focus = state.focus;
    var keep = Object.create(null);
    var shownEdges = 0;
    var edges = document.querySelectorAll("svg.graph .edge");
    for (var i = 0; i < edges.length; i++) {
      var e = data.edges[Number(edges[i].getAttribute("data-index"))];
      var on = focus !== null ? Boolean(e && (e.src === focus || e.dst === focus))
        : ns === "" || Boolean(e && (e.srcNs === ns || e.dstNs === ns));
      edges[i].classList.toggle("dim", !on);
      if (on && e) { keep[e.src] = true; keep[e.dst] = true; shownEdges++; }
    }
    var nodes = document.querySelectorAll("svg.graph .node");
    var shownNodes = 0;
    for (var j = 0; j < nodes.length; j++) {
      var key = nodes[j].getAttribute("data-key");
      var onNode = focus !== null ? (key === focus || keep[key] === true)
        : ns === "" || nodes[j].getAttribute("data-ns") === ns || keep[key] === true;
      nodes[j].classList.toggle("dim", !onNode);
      nodes[j].classList.toggle("focus", focus !== null && key === focus);
      if (onNode) { shownNodes++; }
    }
    var boxes = document.querySelectorAll("svg.graph .box");
    for (var k = 0; k < boxes.length; k++) {
      var boxNs = boxes[k].getAttribute("data-ns");
      boxes[k].classList.toggle("dim", focus === null && ns !== "" && boxNs !== ns);
    }
    var sections = document.querySelectorAll(".ns-section");
    for (var m = 0; m < sections.length; m++) {
      sections[m].hidden = ns !== "" && sections[m].getAttribute("data-ns") !== ns;
    }
    var status = document.getElementById("filter-status");
    if (status) {
      if (focus !== null) {
        status.textContent = shownEdges + " arrows touch the selected identity "
          + "(click it again or press Escape to clear)";
      } else {
        status.textContent = ns === "" ? "showing all namespaces; click an identity to focus it"
          : shownNodes + " identities and " + shownEdges + " edges touch this namespace";
      }
    }
    root.setAttribute("data-filter", ns);
    root.setAttribute("data-focus", focus === null ? "" : focus);
  }

  function nodeKeys() {
    var keys = Object.create(null);
    var nodes = document.querySelectorAll("svg.graph .node");
    for (var i = 0; i < nodes.length; i++) { keys[nodes[i].getAttribute("data-key")] = true; }
    return keys;
  }

  function hashParam(name) {
    // "#ns=NAME" or "#focus=KEY" (both may be joined with "&") preselect a view to link to.
    var parts = String(window.location.hash || "").replace(/^#/, "").split("&");
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].indexOf(name + "=") === 0) {
        try { return decodeURIComponent(parts[i].slice(name.length + 1)); } catch (err) { return null; }
      }
    }
    return null;
  }

  try {
    var data = JSON.parse(document.getElementById("report-data").textContent);
    var select = document.getElementById("ns-filter");
    var svg = document.querySelector("svg.graph");
    if (select) {
      var wanted = hashParam("ns");
      for (var o = 0; o < select.options.length; o++) {
        if (wanted !== null && select.options[o].value === wanted) { select.value = wanted; }
      }
      state.ns = select.value;
      select.addEventListener("change", function () {
        state.ns = select.value;
        state.focus = null;
        applyView(data);
      });
    }
    var focusWanted = hashParam("focus");
    if (focusWanted !== null && nodeKeys()[focusWanted] === true) { state.focus = focusWanted; }
    var svgs = document.querySelectorAll("svg.graph");
    var unfold = function (index) {
      // Folded namespaces are unfolded in <details id="unfold-N"> under the graph; N is our
      // own number (digits only), never a value from the data.
      if (!/^[0-9]+$/.test(String(index))) { return false; }
      var fold = document.getElementById("unfold-" + index);
      if (!fold) { return false; }
      fold.open = true;
      fold.scrollIntoView({ block: "start" });
      root.setAttribute("data-unfolded", String(index));
      return true;
    };
    var pick = function (target) {
      var node = target && target.closest ? target.closest(".node") : null;
      if (node && node.hasAttribute("data-unfold")) {
        unfold(node.getAttribute("data-unfold"));
        return;
      }
      var key = node ? node.getAttribute("data-key") : null;
      state.focus = key === null || key === state.focus ? null : key;
      applyView(data);
    };
    for (var g = 0; g < svgs.length; g++) {
      svgs[g].addEventListener("click", function (ev) { pick(ev.target); });
      svgs[g].addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { pick(ev.target); ev.preventDefault(); }
        if (ev.key === "Escape") { state.focus = null; applyView(data); }
      });
    }
    var unfoldFromHash = function () {
      var match = /^#unfold-([0-9]+)$/.exec(String(window.location.hash || ""));
      if (match) { unfold(match[1]); }
    };
    window.addEventListener("hashchange", unfoldFromHash);
    unfoldFromHash();
    applyView(data);
    var ports = document.getElementById("show-ports");
    var fit = document.getElementById("fit-graph");
    // Fit to width never scales a graph below MIN_SCALE of its size (text stays >= 9 px on an
    // 800 px window): a wider graph scrolls in its own frame instead. Set through the CSSOM,
    // not a style attribute, which the CSP allows.
    var MIN_SCALE = 0.9;
    var sizeGraphs = function () {
      for (var s = 0; s < svgs.length; s++) {
        var natural = Number(svgs[s].getAttribute("width")) || 0;
        svgs[s].style.minWidth = svgs[s].classList.contains("fit")
          ? Math.round(natural * MIN_SCALE) + "px" : "";
      }
    };
    sizeGraphs();
    if (fit) {
      fit.addEventListener("change", function () {
        for (var f = 0; f < svgs.length; f++) { svgs[f].classList.toggle("fit", fit.checked); }
        sizeGraphs();
      });
    }
    if (ports) {
      ports.addEventListener("change", function () {
        for (var p = 0; p < svgs.length; p++) {
          svgs[p].classList.toggle("hide-ports", !ports.checked);
        }
      });
    }
    if (svg) {
      // What the browser really drew: the graph's size and the nodes with a visible box.
      var box = svg.getBoundingClientRect();
      var drawn = 0;
      var shapes = svg.querySelectorAll(".node rect");
      for (var n = 0; n < shapes.length; n++) {
        var b = shapes[n].getBoundingClientRect();
        if (b.width > 0 && b.height > 0) { drawn++; }
      }
      root.setAttribute("data-graph-box", Math.round(box.width) + "x" + Math.round(box.height));
      root.setAttribute("data-graph-nodes", String(drawn));
      // Self-check of the layout's label placement, as drawn at this width: how many pairs
      // of port labels intersect (the layout guarantees none; a browser test reads this).
      var labels = svg.querySelectorAll(".edge text");
      var rects = [];
      for (var l = 0; l < labels.length && rects.length < 600; l++) {
        var r = labels[l].getBoundingClientRect();
        if (r.width > 0 && r.height > 0) { rects.push(r); }
      }
      var overlaps = 0;
      for (var a = 0; a < rects.length; a++) {
        for (var c = a + 1; c < rects.length; c++) {
          var p = rects[a], q = rects[c];
          if (p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom) {
            overlaps++;
          }
        }
      }
      root.setAttribute("data-graph-labels", String(rects.length));
      // The smallest text drawn in any visible graph, in CSS pixels as rendered (font size
      // times the SVG's scale): fit to width keeps it readable (a browser test reads this).
      var smallest = Infinity;
      var texts = document.querySelectorAll("svg.graph text");
      for (var t = 0; t < texts.length; t++) {
        var tb = texts[t].getBoundingClientRect();
        var ctm = texts[t].getScreenCTM();
        if (tb.width > 0 && tb.height > 0 && ctm) {
          var px = parseFloat(window.getComputedStyle(texts[t]).fontSize) * Math.abs(ctm.a);
          if (px < smallest) { smallest = px; }
        }
      }
      root.setAttribute("data-graph-min-font", smallest === Infinity ? ""
        : String(Math.round(smallest * 100) / 100));
      root.setAttribute("data-label-overlaps", String(overlaps));
    }
    // Printing unfolds everything (the print stylesheet does it too where the browser
    // supports ::details-content); the folds closed for printing close again afterwards.
    var unfolded = [];
    window.addEventListener("beforeprint", function () {
      var closed = document.querySelectorAll("details:not([open])");
      for (var d = 0; d < closed.length; d++) { closed[d].open = true; unfolded.push(closed[d]); }
    });
    window.addEventListener("afterprint", function () {
      while (unfolded.length) { unfolded.pop().open = false; }
    });
    root.setAttribute("data-ready", "1");
  } catch (exc) {
    record("exception: " + String(exc));
  }
  flushErrors();
})();
