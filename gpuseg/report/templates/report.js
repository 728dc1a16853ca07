(function () {
  "use strict";
  var node = document.getElementById("lookup-data");
  var data = JSON.parse(node.textContent);
  var index = null;
  var form = document.getElementById("lookup-form");
  var input = document.getElementById("lookup-id");
  var result = document.getElementById("lookup-result");
  function buildIndex() {
    index = new Map();
    for (var i = 0; i < data.ids.length; i++) { index.set(data.ids[i], i); }
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function num(v) {
    if (v === null || v === undefined) { return "-"; }
    return Number(v.toPrecision(4)).toLocaleString("en-US", {maximumFractionDigits: 6});
  }
  function row(tbody, label, value, id, cls) {
    var tr = el("tr");
    tr.appendChild(el("th", label));
    var td = el("td", value, cls);
    if (id) { td.id = id; }
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
  function show(raw) {
    var id = String(raw).trim();
    while (result.firstChild) { result.removeChild(result.firstChild); }
    if (!id) { return; }
    if (index === null) { buildIndex(); }
    var i = index.has(id) ? index.get(id) : -1;
    if (i < 0) {
      var msg = el("p", "Customer \u201c" + id + "\u201d not found", "notfound");
      msg.id = "lookup-notfound";
      result.appendChild(msg);
      if (data.ids.length < data.total) {
        result.appendChild(el("p", "The lookup covers a sample of the customers; segments.parquet has all of them.",
          "muted"));
      }
      return;
    }
    var seg = data.segment[i];
    var name = Object.prototype.hasOwnProperty.call(data.names, String(seg)) ? data.names[String(seg)] :
      (seg < 0 ? "unassigned" : "segment " + seg);
    var table = el("table", null, "kv");
    var tbody = el("tbody");
    table.appendChild(tbody);
    row(tbody, "Customer", id, "lookup-customer");
    row(tbody, "Segment", seg, "lookup-segment");
    row(tbody, "Segment name", name, "lookup-name");
    var c = data.confidence[i];
    row(tbody, "Confidence", c === null ? "-" : c.toFixed(3), "lookup-confidence");
    row(tbody, "Low confidence", data.low[i] ? "yes" : "no", "lookup-low", data.low[i] ? "low" : "");
    result.appendChild(table);
    if (data.features.length && data.values.length) {
      var means = data.segment_means[String(seg)];
      result.appendChild(el("h3", "Features"));
      var ft = el("table", null, "small");
      var head = el("tr");
      head.appendChild(el("th", "feature"));
      head.appendChild(el("th", "this customer"));
      if (means) { head.appendChild(el("th", "segment mean")); }
      var thead = el("thead");
      thead.appendChild(head);
      ft.appendChild(thead);
      var fb = el("tbody");
      for (var j = 0; j < data.features.length; j++) {
        var tr = el("tr");
        tr.appendChild(el("td", data.features[j]));
        tr.appendChild(el("td", num(data.values[j][i])));
        if (means) { tr.appendChild(el("td", num(means[j]), "muted")); }
        fb.appendChild(tr);
      }
      ft.appendChild(fb);
      var wrap = el("div", null, "scroll");
      wrap.appendChild(ft);
      result.appendChild(wrap);
    }
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); show(input.value); });
  var target = window.location.hash.match(/^#customer=(.+)$/);
  if (target) {
    try { input.value = decodeURIComponent(target[1]); } catch (err) { input.value = target[1]; }
    show(input.value);
  }
})();
