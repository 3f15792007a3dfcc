/**
 * The report's only style sheet and script, inlined into the page. The Content-Security-Policy
 * allows exactly these two (by hash) and nothing else, so the page can fetch nothing and run no
 * other code, whatever a snapshot holds.
 */

export const STYLE = `
:root { --fg: #1d232a; --muted: #5b6470; --bg: #fff; --panel: #f5f7f9; --line: #d5dbe1;
  --crit: #c62828; --warn: #b26a00; --info: #1565c0; --ok: #2e7d32; --track: #e4e8ec; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ec; --muted: #9aa4ae; --bg: #15191d; --panel: #1e2328; --line: #39414a;
    --crit: #ef5350; --warn: #ffa726; --info: #64b5f6; --ok: #66bb6a; --track: #2c333a; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header.top { padding: 16px 24px; border-bottom: 1px solid var(--line); background: var(--panel); }
header.top h1 { margin: 0 0 4px; font-size: 20px; }
nav.toc { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 8px; }
nav.toc a { color: var(--info); text-decoration: none; }
main { padding: 8px 24px 40px; max-width: 1280px; }
section.part { margin-top: 28px; }
section.part > h2 { font-size: 17px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { overflow-wrap: anywhere; }
.muted, .note { color: var(--muted); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.not-collected { padding: 6px 10px; border-left: 4px solid var(--warn); background: var(--panel); }
.status { font-weight: 600; }
.status-ok { color: var(--ok); } .status-error, .status-timeout { color: var(--crit); } .status-absent { color: var(--muted); }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 12px; font-weight: 600; text-transform: uppercase; }
.badge.critical { background: var(--crit); } .badge.warning { background: var(--warn); } .badge.info { background: var(--info); }
.counts { display: flex; gap: 8px; flex-wrap: wrap; margin: 6px 0; }
article.finding { border: 1px solid var(--line); border-left-width: 5px; border-radius: 4px; padding: 8px 12px; margin: 10px 0; }
article.finding.critical { border-left-color: var(--crit); } article.finding.warning { border-left-color: var(--warn); } article.finding.info { border-left-color: var(--info); }
article.finding h4 { margin: 0 0 4px; font-size: 14px; }
article.finding ul { margin: 4px 0; padding-left: 20px; }
.cmd { display: flex; align-items: flex-start; gap: 6px; margin: 4px 0; }
.cmd pre { flex: 1; margin: 0; padding: 6px 8px; background: var(--panel); border: 1px solid var(--line); border-radius: 3px; white-space: pre-wrap; overflow-wrap: anywhere; }
pre.note { margin: 4px 0; padding: 4px 8px; border-left: 3px solid var(--line); white-space: pre-wrap; }
button.copy { font: inherit; font-size: 12px; padding: 3px 10px; cursor: pointer; border: 1px solid var(--line); background: var(--bg); color: var(--fg); border-radius: 3px; min-width: 64px; }
button.copy.done { border-color: var(--ok); color: var(--ok); }
.topology { display: flex; flex-direction: column; gap: 10px; }
.topo-row { display: grid; grid-template-columns: minmax(220px, 2fr) 24px minmax(110px, 1fr) 24px minmax(260px, 3fr); align-items: stretch; }
.topology .arrow { display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 18px; }
.box { border: 1px solid var(--line); border-radius: 4px; padding: 6px 10px; background: var(--panel); }
.stores { display: flex; flex-direction: column; gap: 6px; }
.box .role { font-weight: 600; }
.box.device { display: flex; flex-direction: column; justify-content: center; text-align: center; }
.box.device .dev { font-size: 16px; font-weight: 600; }
.box.missing { border-color: var(--crit); }
.usage { display: grid; grid-template-columns: 52px 1fr; gap: 2px 8px; align-items: center; margin-top: 6px; }
.usage .line { grid-column: 2; font-size: 12px; color: var(--muted); }
.usage .line.crossed { color: var(--crit); font-weight: 600; }
span.wide { display: block; min-width: 120px; }
svg.bar { width: 100%; height: 12px; display: block; }
svg.bar .track { fill: var(--track); }
svg.bar .fill.ok { fill: var(--ok); } svg.bar .fill.warn { fill: var(--warn); } svg.bar .fill.crit { fill: var(--crit); }
svg.bar .mark { stroke: var(--fg); stroke-width: 2; }
.cls-lazy { fill: #7e57c2; } .cls-partial { fill: #26a69a; } .cls-full { fill: #90a4ae; } .cls-missing { fill: #e53935; } .cls-unknown { fill: #fdd835; }
.key { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
svg.chart { width: 100%; max-width: 900px; height: auto; display: block; }
svg.chart text { fill: var(--muted); font-size: 11px; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .series polyline { fill: none; stroke-width: 2; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
.legend svg { width: 22px; height: 10px; vertical-align: middle; }
.legend line { stroke-width: 3; }
.c0 { stroke: #1565c0; fill: #1565c0; } .c1 { stroke: #c62828; fill: #c62828; } .c2 { stroke: #2e7d32; fill: #2e7d32; }
.c3 { stroke: #ef6c00; fill: #ef6c00; } .c4 { stroke: #6a1b9a; fill: #6a1b9a; } .c5 { stroke: #00838f; fill: #00838f; }
.c6 { stroke: #ad1457; fill: #ad1457; } .c7 { stroke: #5d4037; fill: #5d4037; }
.dash polyline, line.dash { stroke-dasharray: 6 3; }
tr.bad td { background: color-mix(in srgb, var(--crit) 10%, transparent); }
@media print { pre.note { margin: 4px 0; padding: 4px 8px; border-left: 3px solid var(--line); white-space: pre-wrap; }
button.copy { display: none; } nav.toc { display: none; } }
`;

/** Copy buttons: the Clipboard API where the browser allows it, else the command is selected. */
export const SCRIPT = `
"use strict";
(function () {
  function say(button, text, ok) {
    button.textContent = text;
    button.classList.toggle("done", ok);
    setTimeout(function () { button.textContent = "Copy"; button.classList.remove("done"); }, 2500);
  }
  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function fallback(button, node) {
    select(node);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(button, copied ? "Copied" : "Selected: press Ctrl+C", copied);
  }
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button.copy") : null;
    if (!button) return;
    var node = button.parentElement.querySelector("code");
    if (!node) return;
    var text = node.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { say(button, "Copied", true); },
        function () { fallback(button, node); }
      );
    } else {
      fallback(button, node);
    }
  });
})();
`;
