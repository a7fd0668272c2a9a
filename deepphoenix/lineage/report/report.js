(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("deepphoenix-data").textContent);
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function show(run, hash) {
    var d = data[run] && data[run][hash];
    var panel = document.getElementById("details-" + run);
    if (!d || !panel) { return; }
    panel.textContent = "";
    panel.appendChild(el("h4", d.hash + (d.best_path ? " (on the seed → best path)" : "")));
    var facts = [["kind", d.kind], ["status", d.status], ["score", d.score],
                 ["parameters", d.params], ["parent", d.parent], ["episode", d.episode],
                 ["batch", d.batch], ["stage", d.stage], ["reason", d.reason]];
    var table = el("table");
    facts.forEach(function (f) {
      if (f[1] === undefined || f[1] === null || f[1] === "") { return; }
      var row = el("tr"); row.appendChild(el("th", f[0])); row.appendChild(el("td", f[1]));
      table.appendChild(row);
    });
    panel.appendChild(table);
    if (d.edits.length) { panel.appendChild(el("p", "edits: " + d.edits.join(", "))); }
    if (d.diff) {
      panel.appendChild(el("h5", "diff against its parent"));
      var pre = el("pre", null, "diff");
      d.diff.split("\n").forEach(function (line) {
        var cls = line.startsWith("@@") ? "hunk" : (line.startsWith("+") ? "add" :
                  (line.startsWith("-") ? "del" : ""));
        pre.appendChild(el("span", line + "\n", cls));
      });
      panel.appendChild(pre);
    } else if (d.kind === "variant" && d.parent) {
      panel.appendChild(el("p", "(same text as its parent)", "hint"));
    }
    if (d.traceback) {
      panel.appendChild(el("h5", "traceback"));
      panel.appendChild(el("pre", d.traceback));
    }
    panel.setAttribute("data-selected", d.hash);
  }
  window.deepphoenixShow = show;
  var total = 0;
  document.querySelectorAll(".lineage").forEach(function (box) {
    var run = box.getAttribute("data-run");
    var gd = document.getElementById("lineage-" + run);
    var drawn = 0;
    (gd.data || []).forEach(function (trace) {
      if (trace.meta === "lineage-node") { drawn += trace.x.length; }
    });
    box.setAttribute("data-nodes", String(drawn));
    if (box.getAttribute("data-best")) { show(run, box.getAttribute("data-best")); }
    total += drawn;
    gd.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (point && point.customdata !== undefined && point.data.meta === "lineage-node") {
        show(run, point.customdata);
      }
    });
  });
  document.body.setAttribute("data-lineage-nodes", String(total));
  document.body.setAttribute("data-ready", "1");
})();
