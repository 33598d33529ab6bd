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

  function applyFilter(data, ns) {
    // Values are compared as strings; nothing from the data is ever parsed as HTML.
    var keep = Object.create(null);
    var shownEdges = 0;
    var edges = document.querySelectorAll("svg.graph .edge");
    for (var i = 0; i < edges.length; i++) {
      var e = data.edges[Number(edges[i].getAttribute("data-index"))];
      var on = ns === "" || (e && (e.srcNs === ns || e.dstNs === ns));
      edges[i].classList.toggle("dim", !on);
      if (on && e) { keep[e.src] = true; keep[e.dst] = true; shownEdges++; }
    }
    var nodes = document.querySelectorAll("svg.graph .node");
    var shownNodes = 0;
    for (var j = 0; j < nodes.length; j++) {
      var nodeNs = nodes[j].getAttribute("data-ns");
      var onNode = ns === "" || nodeNs === ns || keep[nodes[j].getAttribute("data-key")] === true;
      nodes[j].classList.toggle("dim", !onNode);
      if (onNode) { shownNodes++; }
    }
    var boxes = document.querySelectorAll("svg.graph .box");
    for (var k = 0; k < boxes.length; k++) {
      var boxNs = boxes[k].getAttribute("data-ns");
      boxes[k].classList.toggle("dim", ns !== "" && boxNs !== ns);
    }
    var sections = document.querySelectorAll(".ns-section");
    for (var m = 0; m < sections.length; m++) {
      sections[m].hidden = ns !== "" && sections[m].getAttribute("data-ns") !== ns;
    }
    var status = document.getElementById("filter-status");
    if (status) {
      status.textContent = ns === "" ? "showing all namespaces"
        : shownNodes + " identities and " + shownEdges + " edges touch this namespace";
    }
    root.setAttribute("data-filter", ns);
  }

  try {
    var data = JSON.parse(document.getElementById("report-data").textContent);
    var select = document.getElementById("ns-filter");
    if (select) {
      // "#ns=NAME" in the address preselects a namespace, so a filtered view can be linked.
      var hash = String(window.location.hash || "");
      if (hash.indexOf("#ns=") === 0) {
        var wanted = decodeURIComponent(hash.slice(4));
        for (var o = 0; o < select.options.length; o++) {
          if (select.options[o].value === wanted) { select.value = wanted; }
        }
      }
      select.addEventListener("change", function () { applyFilter(data, select.value); });
      applyFilter(data, select.value);
    }
    var ports = document.getElementById("show-ports");
    var svg = document.querySelector("svg.graph");
    var fit = document.getElementById("fit-graph");
    if (fit && svg) {
      fit.addEventListener("change", function () { svg.classList.toggle("fit", fit.checked); });
    }
    if (ports && svg) {
      ports.addEventListener("change", function () {
        svg.classList.toggle("hide-ports", !ports.checked);
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
    }
    root.setAttribute("data-ready", "1");
  } catch (exc) {
    record("exception: " + String(exc));
  }
  flushErrors();
})();
