// caviar dashboard: a hash-routed page over the JSON API, or over data inlined by
// `caviar report` (window.CAVIAR_REPORT), drawn with ECharts.
'use strict';

const REPORT = window.CAVIAR_REPORT || null;
const POLL_MS = 2000;
const main = document.getElementById('main');
const charts = new Map();
let pollTimer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path) {
  const response = await fetch(path);
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch (e) { throw new Error(response.ok ? `not JSON: ${e.message}` : text || response.statusText); }
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function fmt(x) {
  if (x === null || x === undefined) return '—';
  if (typeof x !== 'number') return String(x);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(3);
  return x.toPrecision(5).replace(/\.?0+$/, '');
}

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function setStatus(text) { document.getElementById('status').textContent = text; }

function stopPolling() { if (pollTimer) clearInterval(pollTimer); pollTimer = null; }

function disposeCharts() {
  for (const c of charts.values()) c.dispose();
  charts.clear();
}

// Draws `option` into the element of that id and records how many points it holds, which the
// browser tests read back.
// "1 report", "2 reports".
function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function draw(id, option, points) {
  const node = document.getElementById(id);
  let chart = charts.get(id);
  // A chart left on a node the page has since replaced is started afresh on the new node.
  if (chart && chart.getDom() !== node) { chart.dispose(); chart = null; }
  if (!chart) { chart = echarts.init(node, null, { renderer: 'canvas' }); charts.set(id, chart); }
  chart.setOption(option, true);
  node.dataset.points = String(points);
  node.dataset.rendered = '1';
}

window.addEventListener('resize', () => { for (const c of charts.values()) c.resize(); });

// ---- routes -------------------------------------------------------------------------------

// Bumped on every navigation: a page's late answers and timers check it and stand down.
let routeGeneration = 0;

async function route() {
  routeGeneration += 1;
  stopPolling();
  disposeCharts();
  tableState = null;
  currentView = null;
  document.body.dataset.ready = '';
  try {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    if (REPORT) await studyPage(REPORT.study.name);
    else if (parts[0] === 'study' && parts[2] === 'trial') await trialPage(parts[1], parts[3]);
    else if (parts[0] === 'compare' && parts[1] && parts[2]) await comparePage(parts[1], parts[2]);
    else if (parts[0] === 'study' && parts[1]) await studyPage(parts[1]);
    else await listPage();
  } catch (e) {
    main.replaceChildren(el('p', { class: 'error', text: `Could not load: ${e.message}` }));
  }
  document.body.dataset.ready = '1';
  document.body.dataset.loadMs = String(Math.round(performance.now()));
}

window.addEventListener('hashchange', route);

// ---- studies list -------------------------------------------------------------------------

async function listPage() {
  const render = (data) => {
    const rows = data.studies.map((s) => el('tr', {},
      el('td', {}, el('a', { href: `#/study/${encodeURIComponent(s.name)}` }, s.name)),
      el('td', { text: s.direction }),
      el('td', { text: s.metric || '' }),
      el('td', { class: 'num', text: s.trials }),
      el('td', { class: 'num state-complete', text: s.counts.complete }),
      el('td', { class: 'num state-pruned', text: s.counts.pruned }),
      el('td', { class: 'num state-failed', text: s.counts.failed }),
      el('td', { class: 'num state-running', text: s.counts.running }),
      el('td', { class: 'num', text: fmt(s.best_value) }),
      el('td', { text: ago(s.last_activity_ms) })));
    const table = el('table', { id: 'studies', 'data-rows': rows.length },
      el('tr', {}, ...['study', 'direction', 'metric', 'trials', 'complete', 'pruned', 'failed',
        'running', 'best', 'last activity'].map((h) => el('th', { text: h }))),
      ...rows);
    main.replaceChildren(el('h1', { text: 'Studies' }),
      rows.length ? el('div', { class: 'card scroll' }, table)
        : el('p', { text: 'No studies yet: run one with `caviar run STUDY.toml`.' }));
    setStatus(`${rows.length} studies · updated ${new Date().toLocaleTimeString()}`);
  };
  render(await api('/api/studies'));
  pollTimer = setInterval(async () => { try { render(await api('/api/studies')); } catch (e) { setStatus(e.message); } }, POLL_MS);
}

// ---- one study ----------------------------------------------------------------------------

async function studyPage(name) {
  const path = `/api/studies/${encodeURIComponent(name)}`;
  const view = REPORT ? REPORT : await api(path);
  tableState = newTableState(name);
  selected.clear();
  lastCurves = null;
  lastTimeline = null;
  pairChoice = null;
  main.replaceChildren(studySkeleton(view));
  renderStudy(view);
  if (REPORT) return;
  const generation = routeGeneration;
  // Each panel fails alone: a failed answer is shown in the status line, the page stays.
  await Promise.all([fetchTable(), fetchCurves(), fetchTimeline()].map((p) => p.catch((e) => setStatus(e.message))));
  if (generation !== routeGeneration) return;
  let version = JSON.stringify(view.version);
  document.body.dataset.updates = '0';
  pollTimer = setInterval(async () => {
    try {
      const now = JSON.stringify(await api(`${path}/version`));
      // While trials run, the table, their curves and the timeline move without any finishing.
      const running = JSON.parse(now).running > 0;
      if (running || now !== version) {
        fetchTable().catch((e) => setStatus(e.message));
        fetchCurves().catch((e) => setStatus(e.message));
        fetchTimeline().catch((e) => setStatus(e.message));
      }
      if (now === version) return;
      const fresh = await api(path);
      version = JSON.stringify(fresh.version);
      renderStudy(fresh);
      document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
    } catch (e) { setStatus(e.message); }
  }, POLL_MS);
}

function studySkeleton(view) {
  const card = (title, ...body) => el('section', { class: 'card' }, el('h2', { text: title }), ...body);
  const chart = (id) => el('div', { id, class: 'chart' });
  return el('div', {},
    el('h1', { id: 'title' }), el('div', { id: 'meta', class: 'meta' }), el('div', { id: 'study-attrs', class: 'meta' }),
    el('div', { class: 'grid' },
      card(view.pareto ? 'Pareto front' : 'Best trials', el('div', { id: 'best', class: 'scroll' })),
      ...(view.pareto ? [card('Pareto front: every feasible trial, the front in colour', chart('pareto'), el('p', { id: 'pareto-note', class: 'meta' }))] : []),
      card('Optimisation history', chart('history')),
      card(`Learning curves of the best ${view.curves.length}`, el('select', { id: 'curve-metric' }), chart('curves')),
      ...(REPORT ? [] : [card('Learning curves of every trial, live', chart('all-curves'), el('p', { id: 'all-curves-note', class: 'meta' }))]),
      card('Importance (fANOVA; bars: 5–95% over the trees)', chart('importance'), el('p', { id: 'importance-note', class: 'meta' })),
      card('Parallel coordinates', chart('parallel')),
      card('Contour of two parameters', el('div', { class: 'controls' }, 'x ', el('select', { id: 'pair-x' }), ' y ', el('select', { id: 'pair-y' })),
        chart('contour'), el('p', { id: 'contour-note', class: 'meta' })),
      card('Rank of each trial on the same two parameters', chart('rank'), el('p', { class: 'meta', text: 'colour: the trial\'s rank among those drawn, best darkest' })),
      card('Empirical distribution of values (EDF)', chart('edf')),
      ...(REPORT ? [] : [card('Timeline: trials per worker', chart('timeline'), el('p', { id: 'timeline-note', class: 'meta' }))]),
      card('Narrowed ranges of the best trials (coarse to fine)', el('div', { id: 'narrowed', class: 'scroll' }), el('div', { id: 'lineage', class: 'meta' })),
      card('Notes', el('div', { id: 'notes' }))),
    el('div', { id: 'retest' }),
    ...(REPORT ? [] : [el('section', { class: 'card', style: 'margin-top:1rem', id: 'trials-card' },
      el('h2', { text: 'All trials' }), el('div', { id: 'trials-controls', class: 'controls' }),
      el('div', { class: 'scroll' }, el('table', { id: 'trials' })),
      el('div', { id: 'trials-pager', class: 'meta pager' }))]),
    el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Slices' }), el('div', { id: 'slices', class: 'slices' })));
}

function renderStudy(view) {
  currentView = view;
  const s = view.study;
  const metric = s.metric || 'value';
  document.getElementById('title').textContent = `Study ${s.name}`;
  const p = view.pareto;
  const goal = p ? p.names.map((n, i) => `${p.directions[i]} ${n}`).join(', ') : `${s.direction} ${metric}`;
  const best = p ? `Pareto front of ${p.front.length}`
    : `best ${fmt(s.best_value)}` + (s.best_number !== null && s.best_number !== undefined ? ` (trial ${s.best_number})` : '');
  document.getElementById('meta').textContent =
    `${goal} · ${s.trials} trials: ${s.counts.complete} complete, ${s.counts.pruned} pruned, ` +
    `${s.counts.failed} failed, ${s.counts.running} running, ${s.counts.waiting} waiting · ${best}`;
  setStatus(REPORT ? `report written ${new Date(REPORT.written_ms).toLocaleString()}` : `updated ${new Date().toLocaleTimeString()}`);
  studyAttrs(view);
  bestTable(view);
  if (view.pareto) paretoChart(view);
  historyChart(view, metric);
  curvesChart(view, metric);
  importanceChart(view);
  parallelChart(view, metric);
  pairCharts(view, metric);
  edfChart(view, metric);
  if (!REPORT) trialsControls(view);
  narrowedTable(view);
  notesCard(view);
  retestCard(view);
  slices(view, metric);
}

// A re-test beside its parent: each configuration's old value and what it gives now.
function retestCard(view) {
  const box = document.getElementById('retest');
  const found = view.lineage && view.lineage.retest;
  if (!found) { box.replaceChildren(); return; }
  const r = found.report;
  const parentLink = REPORT ? el('span', { text: found.parent })
    : el('a', { href: `#/study/${encodeURIComponent(found.parent)}` }, found.parent);
  const rows = r.configs.map((c) => el('tr', { class: c.beyond_noise ? 'moved' : '' },
    el('td', { class: 'num', text: c.old_rank }),
    el('td', { class: 'num', text: c.new_rank === null ? '–' : c.new_rank }),
    el('td', {}, trialLink(found.parent, c.parent_trial)),
    el('td', { class: 'num', text: fmt(c.old_value) }),
    el('td', { class: 'num', text: c.new_mean === null ? '–' : (c.new_sd === null ? fmt(c.new_mean) : `${fmt(c.new_mean)} ± ${fmt(c.new_sd)}`) }),
    el('td', { class: 'num', text: c.change === null ? '–' : `${c.change > 0 ? '+' : ''}${fmt(c.change)}${c.beyond_noise ? ' *' : ''}` }),
    el('td', { text: `${c.new_values.length} of ${c.runs}${c.failures.length ? ` (${c.failures.length} failed)` : ''}` }),
    el('td', { text: Object.entries(c.params).map(([k, v]) => `${k}=${fmt(v)}`).join(' ') })));
  const table = el('table', { id: 'retest-table', 'data-rows': rows.length },
    el('tr', {}, ...['old rank', 'new rank', 'parent trial', 'old value', 'new mean ± sd', 'change', 'runs', 'params']
      .map((h) => el('th', { text: h }))), ...rows);
  const notes = [];
  notes.push(r.noise_sd === null ? '* changed (one run each measures no noise)'
    : `* beyond the noise: more than ${fmt(r.noise_sigmas)} sd of the difference (run sd ${fmt(r.noise_sd)})`);
  if (r.rank_correlation !== null) notes.push(`rank correlation (Spearman) ${fmt(r.rank_correlation)}`);
  const changed = Array.isArray(found.changed)
    ? (found.changed.length ? `changed since ${found.parent} ran: ${found.changed.join('; ')}` : 'nothing its fingerprint covers changed')
    : `changed: unknown (${found.changed.unknown})`;
  box.replaceChildren(el('section', { class: 'card', style: 'margin-top:1rem' },
    el('h2', {}, 'Re-test of ', parentLink),
    el('p', {}, el('b', { id: 'retest-verdict', text: r.verdict_text }), ` — ${r.reason}`),
    el('div', { class: 'scroll' }, table),
    el('p', { class: 'meta', text: notes.join(' · ') }),
    el('p', { id: 'retest-changed', class: 'meta', text: changed })));
}

// The study's user attributes; of its fingerprint, the git state and how many files it hashes.
function studyAttrs(view) {
  const attrs = view.user_attrs || {};
  const parts = Object.entries(attrs).filter(([k]) => k !== 'fingerprint' && k !== 'note')
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const f = attrs.fingerprint;
  if (f) {
    const git = f.git ? `git ${f.git.revision.slice(0, 12)}${f.git.dirty ? ' (uncommitted changes)' : ''}` : 'no git';
    parts.push(`fingerprint: ${git}, ${Object.keys(f.files || {}).length} file(s)`);
  }
  document.getElementById('study-attrs').textContent = parts.join(' · ');
}

function trialLink(name, number) {
  return REPORT ? el('span', { text: `#${number}` })
    : el('a', { href: `#/study/${encodeURIComponent(name)}/trial/${number}` }, `#${number}`);
}

function bestTable(view) {
  const names = view.params.map((p) => p.name);
  // With several objectives: the Pareto front, one column per objective, by trial number.
  const objectives = view.pareto ? view.pareto.names : [view.study.metric || 'value'];
  const rows = view.best.map((t, i) => el('tr', {},
    el('td', { text: i + 1 }), el('td', {}, trialLink(view.study.name, t.number)),
    ...(view.pareto ? t.values.map((v) => el('td', { class: 'num', text: fmt(v) })) : [el('td', { class: 'num', text: fmt(t.value) })]),
    ...names.map((n) => el('td', { class: 'num', text: fmt(t.params[n]) }))));
  const table = el('table', { 'data-rows': rows.length },
    el('tr', {}, ...[view.pareto ? '#' : 'rank', 'trial', ...objectives, ...names].map((h) => el('th', { text: h }))), ...rows);
  document.getElementById('best').replaceChildren(table);
}

// The first two objectives of every feasible complete trial; the front in colour, joined.
function paretoChart(view) {
  const p = view.pareto;
  const front = new Set(p.front);
  const others = p.points.filter((q) => !front.has(q[0])).map((q) => [q[1], q[2], q[0]]);
  const best = p.points.filter((q) => front.has(q[0])).map((q) => [q[1], q[2], q[0]]).sort((a, b) => a[0] - b[0]);
  const axis = (i) => ({ type: 'value', scale: true, name: `${p.names[i]} (${p.directions[i] === 'maximize' ? 'max' : 'min'})`, nameLocation: 'middle', nameGap: i === 0 ? 25 : 45 });
  draw('pareto', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (q) => `trial ${q.value[2]}: ${fmt(q.value[0])}, ${fmt(q.value[1])}` },
    legend: { data: ['trials', 'Pareto front'], top: 0 },
    grid: { left: 65, right: 20, top: 35, bottom: 45 },
    xAxis: axis(0),
    yAxis: axis(1),
    series: [
      { name: 'trials', type: 'scatter', symbolSize: 4, itemStyle: { color: '#b8bfcc' }, data: others },
      { name: 'Pareto front', type: 'line', step: false, symbolSize: 7, data: best },
      selectedSeries('scatter', p.points.filter((q) => selected.has(q[0])).map((q) => [q[1], q[2], q[0]])),
    ],
  }, others.length + best.length);
  const chart = charts.get('pareto');
  chart.off('click');
  chart.on('click', (q) => { if (!REPORT && q.value) location.hash = `#/study/${encodeURIComponent(view.study.name)}/trial/${q.value[2]}`; });
  document.getElementById('pareto-note').textContent =
    `${p.front.length} trials on the front of ${p.total} feasible` +
    (p.hypervolume !== null ? ` · hypervolume ${fmt(p.hypervolume)} from (${p.reference.map(fmt).join(', ')})` : '');
}

function historyChart(view, metric) {
  const h = view.history;
  const last = h.points.length ? h.points[h.points.length - 1][0] : 0;
  const best = h.best.length ? [...h.best, [last, h.best[h.best.length - 1][1]]] : [];
  draw('history', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (p) => `trial ${p.value[0]}: ${fmt(p.value[1])}` },
    legend: { data: [metric, 'best so far'], top: 0 },
    grid: { left: 60, right: 20, top: 35, bottom: 40 },
    xAxis: { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 25 },
    yAxis: { type: 'value', scale: true },
    series: [
      { name: metric, type: 'scatter', symbolSize: 4, data: h.points, large: h.points.length > 2000 },
      { name: 'best so far', type: 'line', step: 'end', showSymbol: false, data: best },
      selectedSeries('scatter', [...selected.values()].filter((r) => r.value !== null).map((r) => [r.number, r.value, r.number])),
    ],
    title: h.shown < h.total ? { text: `${h.shown} of ${h.total} trials shown`, right: 10, textStyle: { fontSize: 11, color: '#6b7385' } } : undefined,
  }, h.points.length);
  opensTrial('history', view, (q) => (q.seriesType === 'scatter' ? q.value[0] : null));
}

// The metric whose curves are drawn: the objective, or any other the trials reported.
let curveChoice = null;

function curvesChart(view, metric) {
  const select = document.getElementById('curve-metric');
  const others = Object.keys(view.metric_curves || {});
  const names = [metric, ...others.filter((n) => n !== metric)];
  if (!names.includes(curveChoice)) curveChoice = metric;
  select.replaceChildren(...names.map((n) => el('option', { value: n, text: n === metric ? `${n} (objective)` : n })));
  select.value = curveChoice;
  select.style.display = names.length > 1 ? '' : 'none';
  select.onchange = () => { curveChoice = select.value; curvesChart(view, metric); };
  const curves = curveChoice === metric ? view.curves : view.metric_curves[curveChoice];
  drawCurves(curves, curveChoice);
}

function drawCurves(curves, metric) {
  const points = curves.reduce((n, c) => n + c.points.length, 0);
  draw('curves', {
    animation: false,
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 0 },
    grid: { left: 75, right: 20, top: 40, bottom: 40 },
    xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 25, minInterval: 1 },
    // The metric's name runs along the axis, clear of the legend above the plot.
    yAxis: { type: 'value', scale: true, name: metric, nameLocation: 'middle', nameGap: 55 },
    series: curves.map((c) => ({ name: `#${c.number}`, type: 'line', showSymbol: false, data: c.points,
      ...(selected.has(c.number) ? { lineStyle: { width: 4, color: SELECTED }, itemStyle: { color: SELECTED }, z: 10 } : {}) })),
  }, points);
  opensTrial('curves', currentView, (q) => (q.seriesName && q.seriesName.startsWith('#') ? Number(q.seriesName.slice(1)) : null));
  document.getElementById('curves').dataset.lines = String(curves.length);
  document.getElementById('curves').dataset.metric = metric;
}

function importanceChart(view) {
  const note = document.getElementById('importance-note');
  // Too few trials: say how many are needed, with no empty chart under it.
  const box = document.getElementById('importance');
  if (view.importance.error) {
    note.textContent = view.importance.error;
    draw('importance', { series: [] }, 0);
    box.style.display = 'none';
    return;
  }
  box.style.display = '';
  charts.get('importance')?.resize();
  note.textContent = '';
  const ranked = [...view.importance.params].reverse();
  const names = ranked.map((r) => r.name);
  draw('importance', {
    animation: false,
    // Tooltips are HTML: names from the storage are escaped.
    tooltip: { trigger: 'item', formatter: (p) => { const r = ranked[p.dataIndex]; return `${echarts.format.encodeHTML(r.name)}: ${(100 * r.importance).toFixed(1)}% (${(100 * r.low).toFixed(1)}–${(100 * r.high).toFixed(1)})`; } },
    grid: { left: 110, right: 30, top: 10, bottom: 30 },
    xAxis: { type: 'value', min: 0, max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
    yAxis: { type: 'category', data: names },
    series: [
      { type: 'bar', data: ranked.map((r) => r.importance), itemStyle: { color: '#2f6fde' } },
      {
        type: 'custom', data: ranked.map((r, i) => [i, r.low, r.high]),
        renderItem: (params, api) => {
          const y = api.value(0); const lo = api.coord([api.value(1), y]); const hi = api.coord([api.value(2), y]);
          const cap = 5;
          return { type: 'group', children: [
            { type: 'line', shape: { x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1] }, style: { stroke: '#1d2330', lineWidth: 1.5 } },
            { type: 'line', shape: { x1: lo[0], y1: lo[1] - cap, x2: lo[0], y2: lo[1] + cap }, style: { stroke: '#1d2330' } },
            { type: 'line', shape: { x1: hi[0], y1: hi[1] - cap, x2: hi[0], y2: hi[1] + cap }, style: { stroke: '#1d2330' } }] };
        },
      },
    ],
  }, ranked.length);
}

// Axis settings for one parameter: log axes for log parameters; reverse_log ones are drawn as
// 1 - x on a log axis, labelled in x.
function paramAxis(p) {
  if (p.kind === 'categorical') return { type: 'category', data: p.choices };
  if (p.scale === 'log') return { type: 'log', min: p.low, max: p.high };
  if (p.scale === 'reverse_log') {
    // Inverted, the axis ends at the bottom: its name goes to the start, on top like the rest.
    return { type: 'log', inverse: true, min: 1 - p.high, max: 1 - p.low, nameLocation: 'start',
      axisLabel: { formatter: (v) => fmt(1 - v) } };
  }
  return { type: 'value', min: p.low, max: p.high };
}

function axisValue(p, v) {
  if (v === null || v === undefined) return null;
  return p.scale === 'reverse_log' ? 1 - v : v;
}

function parallelChart(view, metric) {
  const rows = view.sample.rows;
  const nParams = view.params.length;
  // A conditional parameter's axis says how many of the trials have it; the others' lines
  // skip it.
  const having = view.params.map((p, i) => rows.filter((r) => r[i] !== null).length);
  const axisName = (p, i) => (having[i] < rows.length ? `${p.name} (${having[i]}/${rows.length})` : p.name);
  const axes = view.params.map((p, i) => ({ dim: i, name: axisName(p, i), ...paramAxis(p) }));
  axes.push({ dim: nParams, name: metric, type: 'value', scale: true });
  const data = rows.map((r) => [...view.params.map((p, i) => axisValue(p, r[i])), r[nParams]]);
  const values = rows.map((r) => r[nParams]).filter((v) => v !== null);
  draw('parallel', {
    animation: false,
    parallel: { left: 50, right: 60, top: 40, bottom: 30 },
    parallelAxis: axes,
    visualMap: values.length ? { type: 'continuous', dimension: nParams, seriesIndex: 0, min: Math.min(...values), max: Math.max(...values),
      inRange: { color: view.study.direction === 'maximize' ? ['#d0d7e5', '#2f6fde'] : ['#2f6fde', '#d0d7e5'] }, show: false } : undefined,
    series: [{ type: 'parallel', lineStyle: { width: 1, opacity: 0.5 }, data },
      { id: 'selected', type: 'parallel', lineStyle: { width: 3, opacity: 1, color: SELECTED },
        data: [...selected.values()].map((r) => [...view.params.map((p) => axisValue(p, rowParam(p, r))), r.value]) }],
  }, data.length);
  const picked = [...selected.keys()];
  opensTrial('parallel', view, (q) => (q.seriesId === 'selected' ? picked[q.dataIndex] : rows[q.dataIndex] && rows[q.dataIndex][nParams + 1]));
}

function narrowedTable(view) {
  // The title counts the trials the ranges come from: fewer than 10 in a young study.
  const of = view.narrowed.length ? view.narrowed[0].of : 0;
  document.getElementById('narrowed').closest('section').querySelector('h2').textContent =
    of ? `Narrowed ranges of the top ${of} (coarse to fine)` : 'Narrowed ranges (no complete trial yet)';
  const rows = view.narrowed.map((r) => el('tr', {}, el('td', { text: r.name }), el('td', { text: r.text.replace(`${r.name}: `, '') })));
  document.getElementById('narrowed').replaceChildren(el('table', { 'data-rows': rows.length }, ...rows));
  const line = document.getElementById('lineage');
  const link = (n) => REPORT ? el('span', { text: n }) : el('a', { href: `#/study/${encodeURIComponent(n)}` }, n);
  const parts = [];
  const { ancestors, children } = view.lineage || { ancestors: [], children: [] };
  const compare = (other) => (REPORT ? [] : [' (', el('a', { class: 'compare-link', href: `#/compare/${encodeURIComponent(other)}/${encodeURIComponent(view.study.name)}` }, 'compare'), ')']);
  if (ancestors.length) {
    parts.push('Rounds: '); ancestors.forEach((a, i) => parts.push(link(a), ...(i === ancestors.length - 1 ? compare(a) : []), ' → '));
    parts.push(el('b', { text: view.study.name }));
  }
  const verdicts = Object.fromEntries(((view.lineage && view.lineage.retests) || []).map((r) => [r.study, r.verdict_text]));
  if (children.length) {
    parts.push(parts.length ? ' → ' : 'Refined by: ');
    children.forEach((c, i) => parts.push(...(i ? [', '] : []), link(c), ...(verdicts[c] ? [` (re-test: ${verdicts[c]})`] : []),
      ...(REPORT ? [] : [' (', el('a', { class: 'compare-link', href: `#/compare/${encodeURIComponent(view.study.name)}/${encodeURIComponent(c)}` }, 'compare'), ')'])));
  }
  const rounds = (view.lineage && view.lineage.rounds) || [];
  const roundRows = rounds.map((r) => {
    const ranges = Object.entries(r.range || {}).map(([k, [lo, hi]]) => `${k}: ${fmt(lo)} .. ${fmt(hi)}`).join(', ');
    const last = r.first_trial + Math.max(1, r.trials) - 1;
    return el('tr', {}, el('td', { text: `round ${r.round}` }), el('td', { text: `trials ${r.first_trial}–${last}` }),
      el('td', { text: ranges }), el('td', { text: r.best ? `best ${fmt(r.best.value)} (#${r.best.number})` : '' }));
  });
  line.replaceChildren(...parts, ...(roundRows.length ? [el('table', { id: 'rounds', 'data-rows': roundRows.length }, ...roundRows)] : []));
}

function slices(view, metric) {
  const box = document.getElementById('slices');
  const nParams = view.params.length;
  if (box.children.length !== nParams) {
    for (const id of [...charts.keys()].filter((k) => k.startsWith('slice-'))) { charts.get(id).dispose(); charts.delete(id); }
    box.replaceChildren(...view.params.map((p, i) => el('div', { id: `slice-${i}`, class: 'slice', 'data-param': p.name })));
  }
  const present = (i) => view.sample.rows.filter((r) => r[i] !== null).length;
  view.params.forEach((p, i) => {
    const data = view.sample.rows.filter((r) => r[i] !== null && r[nParams] !== null).map((r) => [
      p.kind === 'categorical' ? r[i] : r[i], r[nParams], r[nParams + 1]]);
    const x = p.kind === 'categorical' ? { type: 'category', data: p.choices }
      : p.scale === 'reverse_log' ? paramAxis(p) : paramAxis(p);
    const points = p.scale === 'reverse_log' ? data.map((d) => [1 - d[0], d[1], d[2]]) : data;
    draw(`slice-${i}`, {
      animation: false,
      title: { text: p.name + (p.scale !== 'linear' && p.kind !== 'categorical' ? ` (${p.scale})` : '')
        + (present(i) < view.sample.rows.length ? ` · in ${plural(present(i), 'trial')}` : ''), left: 'center', textStyle: { fontSize: 12 } },
      tooltip: { trigger: 'item', formatter: (q) => `trial ${q.value[2]}: ${fmt(q.value[1])}` },
      grid: { left: 55, right: 15, top: 30, bottom: 30 },
      xAxis: { ...x, name: '' },
      yAxis: { type: 'value', scale: true, name: metric },
      series: [{ type: 'scatter', symbolSize: 4, data: points },
        selectedSeries('scatter', [...selected.values()].filter((r) => r.value !== null && rowParam(p, r) !== null)
          .map((r) => [axisValue(p, rowParam(p, r)), r.value, r.number]))],
    }, points.length);
    opensTrial(`slice-${i}`, view, (q) => q.value[2]);
  });
}

// ---- two studies side by side --------------------------------------------------------------

const COMPARE_COLOURS = ['#2f6fde', '#e8590c'];

async function comparePage(a, b) {
  const [va, vb] = await Promise.all([api(`/api/studies/${encodeURIComponent(a)}`), api(`/api/studies/${encodeURIComponent(b)}`)]);
  const views = [va, vb];
  const link = (n) => el('a', { href: `#/study/${encodeURIComponent(n)}` }, n);
  const card = (title, ...body) => el('section', { class: 'card' }, el('h2', { text: title }), ...body);
  const chart = (id) => el('div', { id, class: 'chart' });
  const relation = (() => {
    const ancestors = (v) => (v.lineage && v.lineage.ancestors) || [];
    const retestOf = (v) => v.lineage && v.lineage.retest && v.lineage.retest.parent;
    if (ancestors(vb).includes(a)) return `${b} refines ${a} (a narrowed round)`;
    if (ancestors(va).includes(b)) return `${a} refines ${b} (a narrowed round)`;
    if (retestOf(vb) === a) return `${b} re-tests ${a}`;
    if (retestOf(va) === b) return `${a} re-tests ${b}`;
    return 'two studies';
  })();
  main.replaceChildren(
    el('h1', {}, 'Compare ', link(a), ' and ', link(b)),
    el('div', { id: 'compare-relation', class: 'meta', text: relation }),
    el('div', { class: 'grid' },
      card('Best values and ranges', el('div', { id: 'compare-table', class: 'scroll' })),
      card('Optimisation history of both', chart('compare-history')),
      card('Learning curves of the best of both', chart('compare-curves'))));
  // The table: goal, trials, best, then each parameter's range and its top-10 range.
  const names = [...new Set(views.flatMap((v) => v.params.map((p) => p.name)))];
  const range = (v, n) => {
    const p = v.params.find((x) => x.name === n);
    if (!p) return '—';
    return p.kind === 'categorical' ? `{${p.choices.join(', ')}}` : `${fmt(p.low)} .. ${fmt(p.high)}${p.scale !== 'linear' ? ` (${p.scale})` : ''}`;
  };
  const narrowed = (v, n) => { const r = v.narrowed.find((x) => x.name === n); return r ? r.text.replace(`${n}: `, '') : '—'; };
  const best = (v) => (v.study.best_value === null || v.study.best_value === undefined ? '—' : `${fmt(v.study.best_value)} (trial ${v.study.best_number})`);
  const row = (label, f, cls) => el('tr', {}, el('td', { text: label }), ...views.map((v) => el('td', { class: cls || '', text: f(v) })));
  document.getElementById('compare-table').replaceChildren(el('table', { id: 'compare' },
    el('tr', {}, el('th', { text: '' }), ...[a, b].map((n, i) => el('th', { style: `color:${COMPARE_COLOURS[i]}`, text: n }))),
    row('goal', (v) => `${v.study.direction} ${v.study.metric || 'value'}`),
    row('trials', (v) => `${v.study.trials} (${v.study.counts.complete} complete)`),
    el('tr', { id: 'compare-best' }, el('td', { text: 'best' }), ...views.map((v) => el('td', { class: 'num', text: best(v) }))),
    ...names.flatMap((n) => [row(`${n}: range`, (v) => range(v, n)), row(`${n}: best 10 within`, (v) => narrowed(v, n))])));
  // History: both studies' values and bests on one trial axis.
  const series = views.flatMap((v, i) => {
    const h = v.history;
    const last = h.points.length ? h.points[h.points.length - 1][0] : 0;
    const bestLine = h.best.length ? [...h.best, [last, h.best[h.best.length - 1][1]]] : [];
    return [
      { name: [a, b][i], type: 'scatter', symbolSize: 4, itemStyle: { color: COMPARE_COLOURS[i] }, data: h.points },
      { name: `${[a, b][i]} best`, type: 'line', step: 'end', showSymbol: false, lineStyle: { color: COMPARE_COLOURS[i] }, itemStyle: { color: COMPARE_COLOURS[i] }, data: bestLine },
    ];
  });
  draw('compare-history', {
    animation: false, legend: { top: 0 },
    tooltip: { trigger: 'item', formatter: (q) => `${echarts.format.encodeHTML(q.seriesName)} trial ${q.value[0]}: ${fmt(q.value[1])}` },
    grid: { left: 60, right: 20, top: 35, bottom: 40 },
    xAxis: { type: 'value', name: 'trial', nameLocation: 'middle', nameGap: 25, minInterval: 1 },
    yAxis: { type: 'value', scale: true },
    series,
  }, va.history.points.length + vb.history.points.length);
  const curves = views.flatMap((v, i) => v.curves.map((c) => ({ name: `${[a, b][i]} #${c.number}`, type: 'line', showSymbol: false, data: c.points,
    lineStyle: { color: COMPARE_COLOURS[i], type: i ? 'dashed' : 'solid', width: 1.5 }, itemStyle: { color: COMPARE_COLOURS[i] } })));
  draw('compare-curves', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (q) => `${echarts.format.encodeHTML(q.seriesName)}: step ${q.value[0]}, ${fmt(q.value[1])}` },
    grid: { left: 75, right: 20, top: 20, bottom: 40 },
    xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 25, minInterval: 1 },
    yAxis: { type: 'value', scale: true, name: va.study.metric || 'value', nameLocation: 'middle', nameGap: 55 },
    series: curves,
  }, curves.reduce((n, c) => n + c.data.length, 0));
  // Which study a clicked series belongs to, by its position: a's series come first.
  charts.get('compare-history').on('click', (q) => {
    if (q.seriesType !== 'scatter') return;
    const study = q.seriesIndex < 2 ? a : b;
    location.hash = `#/study/${encodeURIComponent(study)}/trial/${q.value[0]}`;
  });
  charts.get('compare-curves').on('click', (q) => {
    const study = q.seriesIndex < va.curves.length ? a : b;
    const c = (q.seriesIndex < va.curves.length ? va.curves : vb.curves)[q.seriesIndex < va.curves.length ? q.seriesIndex : q.seriesIndex - va.curves.length];
    location.hash = `#/study/${encodeURIComponent(study)}/trial/${c.number}`;
  });
  setStatus(`compared ${new Date().toLocaleTimeString()}`);
}

// ---- notes ---------------------------------------------------------------------------------

// A note and, in the dashboard, a box to edit it with the write token. Returns [section].
function noteEditor(path, text, id) {
  const shown = el('pre', { id: `${id}-text`, class: 'note', text: text || '(no note yet)' });
  if (REPORT) return [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Note' }), shown)];
  const box = el('textarea', { id: `${id}-edit`, rows: 3, placeholder: 'what this was for, what you saw' });
  box.value = text || '';
  const token = el('input', { id: `${id}-token`, type: 'password', placeholder: 'write token (printed at start-up)', autocomplete: 'off' });
  token.value = sessionStorage.getItem(TOKEN_KEY) || '';
  const status = el('span', { id: `${id}-status`, class: 'meta' });
  const save = el('button', { id: `${id}-save`, type: 'button', text: 'Save note' });
  save.addEventListener('click', async () => {
    sessionStorage.setItem(TOKEN_KEY, token.value);
    status.textContent = 'saving…';
    try {
      const response = await fetch(path, { method: 'POST',
        headers: { Authorization: `Bearer ${token.value}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ text: box.value }) });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || response.statusText);
      shown.textContent = body.note || '(no note yet)';
      status.textContent = 'saved';
    } catch (e) {
      status.textContent = `refused: ${e.message}`;
    }
  });
  return [el('section', { class: 'card note-editor', style: 'margin-top:1rem' }, el('h2', { text: 'Note' }), shown,
    box, el('div', {}, token, ' ', save, ' ', status))];
}

function notesCard(view) {
  const box = document.getElementById('notes');
  const notes = view.notes || { study: null, trials: [] };
  // The editor is built once, so a poll does not wipe what is being typed.
  if (!box.dataset.built) {
    box.dataset.built = '1';
    const path = `/api/studies/${encodeURIComponent(view.study.name)}/note`;
    const [section] = noteEditor(path, notes.study, 'study-note');
    box.replaceChildren(...[...section.childNodes].filter((n) => n.tagName !== 'H2'), el('div', { id: 'trial-notes' }));
  } else if (REPORT || document.activeElement !== document.getElementById('study-note-edit')) {
    document.getElementById('study-note-text').textContent = notes.study || '(no note yet)';
  }
  const rows = notes.trials.map(([number, text]) => el('tr', {}, el('td', {}, trialLink(view.study.name, number)), el('td', { class: 'note', text })));
  document.getElementById('trial-notes').replaceChildren(...(rows.length
    ? [el('h2', { text: 'Notes on trials' }), el('table', { id: 'trial-notes-table', 'data-rows': rows.length }, ...rows)] : []));
}

// ---- two parameters at once: contour and rank ----------------------------------------------

// Where a value sits in its parameter's sampling space, 0 to 1 (log10 for log, log10(1 - x) for
// reverse_log, the cell of a choice for categorical), and back.
function toUnit(p, v) {
  if (p.kind === 'categorical') return (v + 0.5) / p.choices.length;
  if (p.scale === 'log') return (Math.log10(v) - Math.log10(p.low)) / (Math.log10(p.high) - Math.log10(p.low));
  if (p.scale === 'reverse_log') return (Math.log10(1 - v) - Math.log10(1 - p.low)) / (Math.log10(1 - p.high) - Math.log10(1 - p.low));
  return p.high > p.low ? (v - p.low) / (p.high - p.low) : 0.5;
}

function fromUnit(p, u) {
  if (p.kind === 'categorical') return u * p.choices.length - 0.5;
  if (p.scale === 'log') return 10 ** (Math.log10(p.low) + u * (Math.log10(p.high) - Math.log10(p.low)));
  if (p.scale === 'reverse_log') return 1 - 10 ** (Math.log10(1 - p.low) + u * (Math.log10(1 - p.high) - Math.log10(1 - p.low)));
  return p.low + u * (p.high - p.low);
}

let pairChoice = null;

function pairCharts(view, metric) {
  const xs = document.getElementById('pair-x');
  const ys = document.getElementById('pair-y');
  const n = view.params.length;
  const note = document.getElementById('contour-note');
  const shown = n >= 2;
  for (const id of ['contour', 'rank']) document.getElementById(id).style.display = shown ? '' : 'none';
  xs.parentNode.style.display = shown ? '' : 'none';
  if (!shown) {
    note.textContent = 'needs two parameters';
    for (const id of ['contour', 'rank']) draw(id, { series: [] }, 0);
    return;
  }
  // The pair is kept by name: parameters may come and go in a define-by-run study.
  const index = (name) => view.params.findIndex((p) => p.name === name);
  if (!pairChoice || index(pairChoice[0]) < 0 || index(pairChoice[1]) < 0) {
    // The two parameters that mattered most, when importance knows.
    const ranked = (view.importance.params || []).map((r) => r.name).filter((name) => index(name) >= 0);
    pairChoice = ranked.length >= 2 ? [ranked[0], ranked[1]] : [view.params[0].name, view.params[1].name];
  }
  const options = () => view.params.map((p, i) => el('option', { value: i, text: p.name }));
  xs.replaceChildren(...options()); ys.replaceChildren(...options());
  xs.value = index(pairChoice[0]); ys.value = index(pairChoice[1]);
  xs.onchange = ys.onchange = () => { pairChoice = [view.params[Number(xs.value)].name, view.params[Number(ys.value)].name]; pairCharts(view, metric); };
  for (const id of ['contour', 'rank']) { const c = charts.get(id); if (c) c.resize(); }
  const [i, j] = [index(pairChoice[0]), index(pairChoice[1])];
  const px = view.params[i];
  const py = view.params[j];
  const rows = view.sample.rows.filter((r) => r[i] !== null && r[j] !== null && r[n] !== null);
  const axis = (p) => ({ ...paramAxis(p), name: p.name, nameLocation: 'middle', nameGap: p === px ? 25 : 55 });
  const points = rows.map((r) => [axisValue(px, r[i]), axisValue(py, r[j]), r[n], r[n + 1]]);
  // The surface: each cell of a 30 x 30 grid in the sampling space takes the inverse-distance
  // weighted value of its 8 nearest trials.
  const G = 30;
  const known = rows.map((r) => [toUnit(px, r[i]), toUnit(py, r[j]), r[n]]);
  const cells = [];
  if (known.length >= 3 && i !== j) {
    for (let a = 0; a < G; a++) {
      for (let b = 0; b < G; b++) {
        const ca = (a + 0.5) / G; const cb = (b + 0.5) / G;
        const near = known.map((k) => [(k[0] - ca) ** 2 + (k[1] - cb) ** 2, k[2]]).sort((p, q) => p[0] - q[0]).slice(0, 8);
        let w = 0; let sum = 0;
        for (const [d, v] of near) { const wk = 1 / (d + 1e-6); w += wk; sum += wk * v; }
        cells.push([a / G, (a + 1) / G, b / G, (b + 1) / G, sum / w]);
      }
    }
  }
  const values = rows.map((r) => r[n]);
  const lo = Math.min(...values, ...cells.map((c) => c[4]));
  const hi = Math.max(...values, ...cells.map((c) => c[4]));
  const colours = view.study.direction === 'maximize' ? ['#f3f6fb', '#2f6fde'] : ['#2f6fde', '#f3f6fb'];
  const corner = (api, ua, ub) => api.coord([axisValue(px, fromUnit(px, ua)), axisValue(py, fromUnit(py, ub))]);
  draw('contour', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (q) => (q.seriesType === 'scatter' ? `trial ${q.value[3]}: ${fmt(q.value[2])}` : `about ${fmt(q.value[4])}`) },
    grid: { left: 75, right: 70, top: 15, bottom: 45 },
    xAxis: axis(px), yAxis: axis(py),
    visualMap: values.length ? { type: 'continuous', min: lo, max: hi, dimension: 4, seriesIndex: 0, inRange: { color: colours }, right: 0, top: 'middle', itemHeight: 120, text: [fmt(hi), fmt(lo)], calculable: false } : undefined,
    series: [
      { type: 'custom', silent: true, data: cells, z: 1,
        renderItem: (params, api) => {
          const p0 = corner(api, api.value(0), api.value(2)); const p1 = corner(api, api.value(1), api.value(3));
          return { type: 'rect', shape: { x: Math.min(p0[0], p1[0]), y: Math.min(p0[1], p1[1]), width: Math.abs(p1[0] - p0[0]) + 0.5, height: Math.abs(p1[1] - p0[1]) + 0.5 },
            style: { fill: api.visual('color') } };
        } },
      { type: 'scatter', symbolSize: 6, z: 5, itemStyle: { color: '#1d2330', borderColor: '#fff', borderWidth: 1 }, data: points },
      selectedSeries('scatter', [...selected.values()].filter((r) => r.value !== null && rowParam(px, r) !== null && rowParam(py, r) !== null)
        .map((r) => [axisValue(px, rowParam(px, r)), axisValue(py, rowParam(py, r)), r.value, r.number])),
    ],
  }, points.length);
  opensTrial('contour', view, (q) => (q.seriesType === 'scatter' ? q.value[3] : null));
  note.textContent = `${plural(points.length, 'trial')} of the sample; the surface interpolates them (inverse distance, 8 nearest, in the sampling space)`;
  // Rank: 0 for the best trial drawn, 1 for the worst.
  const order = [...points].sort((a, b) => (view.study.direction === 'maximize' ? b[2] - a[2] : a[2] - b[2]));
  const rankOf = new Map(order.map((q, k) => [q[3], order.length > 1 ? k / (order.length - 1) : 0]));
  draw('rank', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (q) => `trial ${q.value[3]}: ${fmt(q.value[2])} (rank ${Math.round(q.value[4] * (order.length - 1)) + 1} of ${order.length})` },
    grid: { left: 75, right: 70, top: 15, bottom: 45 },
    xAxis: axis(px), yAxis: axis(py),
    visualMap: { type: 'continuous', min: 0, max: 1, dimension: 4, seriesIndex: 0, inRange: { color: ['#0b3d91', '#9bb8ee', '#eef2f9'] }, right: 0, top: 'middle', itemHeight: 120, text: ['worst', 'best'] },
    series: [{ type: 'scatter', symbolSize: 7, data: points.map((q) => [...q, rankOf.get(q[3])]) },
      { ...selectedSeries('scatter', points.filter((q) => selected.has(q[3])).map((q) => [...q, rankOf.get(q[3])])), symbolSize: 12 }],
  }, points.length);
  opensTrial('rank', view, (q) => q.value[3]);
}

function edfChart(view, metric) {
  const e = view.edf;
  draw('edf', {
    animation: false,
    tooltip: { trigger: 'axis', formatter: (q) => `${Math.round(q[0].value[1] * 100)}% of trials at or below ${fmt(q[0].value[0])}` },
    grid: { left: 60, right: 20, top: 15, bottom: 45 },
    xAxis: { type: 'value', scale: true, name: metric, nameLocation: 'middle', nameGap: 25 },
    yAxis: { type: 'value', min: 0, max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
    series: [{ type: 'line', step: 'end', showSymbol: false, data: e.points }],
  }, e.points.length);
}

// ---- when trials ran: a Gantt view per worker ---------------------------------------------

async function fetchTimeline() {
  const t = tableState;
  if (!t || REPORT || !document.getElementById('timeline')) return;
  const data = await api(`/api/studies/${encodeURIComponent(t.study)}/timeline`);
  if (tableState !== t) return;
  lastTimeline = data;
  drawTimeline(data);
}

let lastTimeline = null;

function drawTimeline(data) {
  const view = currentView;
  // A worker that runs several trials at once (a process with several slots) gets one lane per
  // slot in use: the first lane free when the trial started.
  const lanesOf = new Map();
  const laneOfTrial = new Map();
  for (const r of [...data.rows].sort((a, b) => a[2] - b[2] || a[0] - b[0])) {
    const ends = lanesOf.get(r[1]) || [];
    let lane = ends.findIndex((end) => end !== null && end <= r[2]);
    if (lane < 0) { lane = ends.length; ends.push(null); }
    ends[lane] = r[3] === null ? Infinity : r[3];
    lanesOf.set(r[1], ends);
    laneOfTrial.set(r[0], lane);
  }
  const workers = [];
  const rowOf = new Map();
  for (const w of data.workers) {
    const lanes = (lanesOf.get(w) || [null]).length;
    for (let k = 0; k < lanes; k++) { rowOf.set(`${w}\u0000${k}`, workers.length); workers.push(lanes > 1 ? `${w} · ${k + 1}` : w); }
  }
  const rows = data.rows.map((r) => [rowOf.get(`${r[1]}\u0000${laneOfTrial.get(r[0])}`), r[2], r[3], r[0], r[4], r[5], r[1]]);
  draw('timeline', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (q) => { const v = q.value; return `trial ${v[3]} (${v[4]}) on ${echarts.format.encodeHTML(v[6])}: ${fmt((v[2] - v[1]) / 1000)} s`
      + (v[5] ? `<br>${echarts.format.encodeHTML(v[5])}` : ''); } },
    grid: { left: 140, right: 20, top: 10, bottom: 45 },
    xAxis: { type: 'time', name: 'time', nameLocation: 'middle', nameGap: 25 },
    yAxis: { type: 'category', data: workers, axisLabel: { width: 130, overflow: 'truncate' } },
    series: [{ type: 'custom', encode: { x: [1, 2], y: 0 }, data: rows,
      renderItem: (params, api) => {
        const start = api.coord([api.value(1), api.value(0)]); const end = api.coord([api.value(2), api.value(0)]);
        const h = api.size([0, 1])[1] * 0.6;
        return { type: 'rect', shape: { x: start[0], y: start[1] - h / 2, width: Math.max(1, end[0] - start[0]), height: h },
          style: { fill: selected.has(api.value(3)) ? SELECTED : STATE_COLOURS[rows[params.dataIndex][4]] || '#8796b5', stroke: '#fff', lineWidth: 0.5 } };
      } }],
  }, rows.length);
  if (view) opensTrial('timeline', view, (q) => q.value[3]);
  const failed = data.rows.filter((r) => r[4] === 'failed').length;
  const running = data.rows.filter((r) => r[4] === 'running').length;
  document.getElementById('timeline-note').textContent =
    `${plural(data.rows.length, 'trial')} on ${plural(data.workers.length, 'worker')}` + (workers.length > data.workers.length ? ` (${workers.length} lanes: trials at once)` : '') + (data.rows.length < data.total ? ` (the latest ${data.rows.length} of ${data.total})` : '') +
    ` · ${failed} failed (red), ${running} running (blue, to now)`;
}

// ---- every trial's curve, polled while trials run ------------------------------------------

const STATE_COLOURS = { complete: '#8796b5', pruned: '#d4a017', failed: '#c62828', running: '#2f6fde', waiting: '#6b7385' };
let lastCurves = null;

async function fetchCurves() {
  const t = tableState;
  if (!t || REPORT || !document.getElementById('all-curves')) return;
  const data = await api(`/api/studies/${encodeURIComponent(t.study)}/curves`);
  if (tableState !== t) return;
  lastCurves = data;
  drawAllCurves(data);
}

function drawAllCurves(data) {
  const view = currentView;
  const points = data.curves.reduce((n, c) => n + c.points.length, 0);
  const series = data.curves.map((c) => {
    const picked = selected.has(c.number);
    const colour = picked ? SELECTED : STATE_COLOURS[c.state] || '#8796b5';
    const running = c.state === 'running';
    // Where the trial's parameters were changed while it ran: a diamond on its curve.
    const marks = c.changes.map((step) => c.points.find((q) => q[0] >= step)).filter((q) => q);
    return {
      name: `#${c.number}`, type: 'line', showSymbol: false, data: c.points.map((q) => [q[0], q[1], c.number, c.state]),
      lineStyle: { width: picked || running ? 2.5 : 1, color: colour, opacity: picked || running ? 1 : 0.45 },
      itemStyle: { color: colour }, z: picked ? 10 : running ? 5 : 2,
      markPoint: marks.length ? { symbol: 'diamond', symbolSize: 10, itemStyle: { color: '#111' }, label: { show: false },
        data: marks.map((q) => ({ coord: [q[0], q[1]], name: 'parameters changed' })) } : undefined,
    };
  });
  const rungs = data.rungs || [];
  if (series.length && rungs.length) {
    series[0].markLine = { symbol: 'none', silent: true, lineStyle: { type: 'dashed', color: '#9a6700' },
      label: { formatter: (p) => `rung ${p.value}`, position: 'end' }, data: rungs.map((r) => ({ xAxis: r })) };
  }
  draw('all-curves', {
    animation: false,
    tooltip: { trigger: 'item', formatter: (q) => (q.componentType === 'markPoint' ? 'parameters changed here'
      : `trial ${q.value[2]} (${q.value[3]}): step ${q.value[0]}, ${fmt(q.value[1])}`) },
    grid: { left: 75, right: 40, top: 20, bottom: 40 },
    xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 25, minInterval: 1 },
    yAxis: { type: 'value', scale: true, name: view ? view.study.metric || 'value' : 'value', nameLocation: 'middle', nameGap: 55 },
    series,
  }, points);
  const node = document.getElementById('all-curves');
  node.dataset.lines = String(data.curves.length);
  node.dataset.running = JSON.stringify(Object.fromEntries(data.curves.filter((c) => c.state === 'running').map((c) => [c.number, c.points.length])));
  if (view) opensTrial('all-curves', view, (q) => (q.componentType === 'series' ? q.value[2] : null));
  const counts = {};
  for (const c of data.curves) counts[c.state] = (counts[c.state] || 0) + 1;
  document.getElementById('all-curves-note').textContent =
    `${data.shown} of ${plural(data.total, 'trial')} with reports` +
    (data.shown < data.total ? ' (running ones, the best, and an even sample of the rest)' : '') + ' · ' +
    Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ') +
    (rungs.length ? ` · dashed: the pruner's rungs (${rungs.join(', ')})` : '') +
    (data.curves.some((c) => c.changes.length) ? ' · ◆ parameters changed' : '');
}

// ---- all trials: a table paged, sorted and filtered by the server --------------------------

const SELECTED = '#e8590c';
const STATES = ['complete', 'pruned', 'failed', 'running', 'waiting'];
// Trials picked in the table, by number: drawn in every chart in SELECTED.
const selected = new Map();
let currentView = null;
let tableState = null;

function newTableState(study) {
  return { study, sort: 'number', order: 'asc', states: new Set(STATES), valueMin: '', valueMax: '',
    param: '', paramMin: '', paramMax: '', paramIn: '', offset: 0, limit: 50 };
}

// The highlight layer of a chart; always present, so a selection only changes its data.
function selectedSeries(type, data) {
  return { id: 'selected', name: 'selected', type, symbolSize: 10, z: 10, itemStyle: { color: SELECTED }, data };
}

// A click on one of the chart's points opens that trial (in the dashboard, not the report).
function opensTrial(id, view, numberOf) {
  const chart = charts.get(id);
  if (!chart || REPORT) return;
  chart.off('click');
  chart.on('click', (q) => {
    const n = numberOf(q);
    if (n !== null && n !== undefined && !Number.isNaN(n)) {
      location.hash = `#/study/${encodeURIComponent(view.study.name)}/trial/${n}`;
    }
  });
}

// A table row's value of `p` as the charts' sample rows hold it: a categorical one as the index
// of its choice.
function rowParam(p, r) {
  const v = r.params[p.name];
  if (v === undefined || v === null) return null;
  if (p.kind === 'categorical') { const i = p.choices.indexOf(String(v)); return i < 0 ? null : i; }
  return v;
}

function redrawSelection() {
  if (!currentView) return;
  const metric = currentView.study.metric || 'value';
  historyChart(currentView, metric);
  if (currentView.pareto) paretoChart(currentView);
  curvesChart(currentView, metric);
  parallelChart(currentView, metric);
  slices(currentView, metric);
  if (lastCurves && document.getElementById('all-curves')) drawAllCurves(lastCurves);
  if (lastTimeline && document.getElementById('timeline')) drawTimeline(lastTimeline);
  pairCharts(currentView, metric);
  for (const tr of document.querySelectorAll('#trials tr[data-number]')) {
    tr.classList.toggle('selected', selected.has(Number(tr.dataset.number)));
  }
  document.getElementById('trials-card').dataset.selected = String(selected.size);
}

function tableQuery() {
  const t = tableState;
  const q = new URLSearchParams({ sort: t.sort, order: t.order, offset: t.offset, limit: t.limit });
  if (t.states.size < STATES.length) q.set('state', [...t.states].join(','));
  if (t.valueMin !== '') q.set('value_min', t.valueMin);
  if (t.valueMax !== '') q.set('value_max', t.valueMax);
  if (t.param) {
    if (t.paramMin !== '') q.set(`p.${t.param}.min`, t.paramMin);
    if (t.paramMax !== '') q.set(`p.${t.param}.max`, t.paramMax);
    if (t.paramIn !== '') q.set(`p.${t.param}.in`, t.paramIn);
  }
  return q;
}

// Filters: states, a value range, one parameter's range (or choices). Built once per study.
function trialsControls(view) {
  const box = document.getElementById('trials-controls');
  if (!box || box.dataset.built === view.study.name) return;
  box.dataset.built = view.study.name;
  const t = tableState;
  const changed = () => { t.offset = 0; fetchTable().catch((e) => setStatus(e.message)); };
  const input = (id, placeholder, key) => {
    const node = el('input', { id, placeholder, size: 9 });
    node.value = t[key];
    node.addEventListener('change', () => { t[key] = node.value.trim(); changed(); });
    return node;
  };
  const states = STATES.map((st) => {
    const box = el('input', { type: 'checkbox', id: `trials-state-${st}` });
    box.checked = t.states.has(st);
    box.addEventListener('change', () => { if (box.checked) t.states.add(st); else t.states.delete(st); changed(); });
    return el('label', { class: `state-${st}` }, box, ` ${st}`);
  });
  const param = el('select', { id: 'trials-param' }, el('option', { value: '', text: 'parameter…' }),
    ...view.params.map((p) => el('option', { value: p.name, text: p.name })));
  const min = input('trials-param-min', 'min', 'paramMin');
  const max = input('trials-param-max', 'max', 'paramMax');
  const choices = input('trials-param-in', 'choices a,b', 'paramIn');
  const showKind = () => {
    const p = view.params.find((x) => x.name === t.param);
    const categorical = p && p.kind === 'categorical';
    min.style.display = max.style.display = categorical ? 'none' : '';
    choices.style.display = categorical ? '' : 'none';
  };
  param.addEventListener('change', () => {
    t.param = param.value; t.paramMin = t.paramMax = t.paramIn = '';
    min.value = max.value = choices.value = '';
    showKind(); changed();
  });
  showKind();
  box.replaceChildren(el('span', { class: 'group' }, ...states),
    el('span', { class: 'group' }, 'value ', input('trials-value-min', 'min', 'valueMin'), ' – ', input('trials-value-max', 'max', 'valueMax')),
    el('span', { class: 'group' }, param, ' ', min, ' ', max, choices),
    el('span', { id: 'trials-error', class: 'error' }));
}

async function fetchTable() {
  const t = tableState;
  if (!t || REPORT || !document.getElementById('trials')) return;
  if (t.states.size === 0) {
    renderTable({ rows: [], matched: 0, offset: 0, total: currentView ? currentView.study.trials : 0 });
    return;
  }
  const asked = tableQuery().toString();
  let page;
  try {
    page = await api(`/api/studies/${encodeURIComponent(t.study)}/trials?${asked}`);
  } catch (e) {
    document.getElementById('trials-error').textContent = e.message;
    return;
  }
  // A newer question was asked meanwhile, or the page was left: drop this answer.
  if (tableState !== t || tableQuery().toString() !== asked) return;
  document.getElementById('trials-error').textContent = '';
  renderTable(page);
}

function renderTable(page) {
  const t = tableState;
  const view = currentView;
  const names = view.params.map((p) => p.name);
  const objectives = view.pareto ? view.pareto.names : [view.study.metric || 'value'];
  const columns = [['#', 'number'], ['state', 'state'], ...objectives.map((o, i) => [o, i === 0 ? 'value' : null]),
    ...names.map((n) => [n, `param:${n}`]), ['duration (s)', 'duration'], ['step', 'step'], ['worker', 'worker'], ['reason', null]];
  const head = el('tr', {}, ...columns.map(([label, key]) => {
    const arrow = key && key === t.sort ? (t.order === 'asc' ? ' ▲' : ' ▼') : '';
    const th = el('th', { text: label + arrow, ...(key ? { 'data-sort': key, class: 'sortable' } : {}) });
    if (key) th.addEventListener('click', () => {
      if (t.sort === key) t.order = t.order === 'asc' ? 'desc' : 'asc';
      else { t.sort = key; t.order = key === 'number' ? 'asc' : (key === 'value' && view.study.direction === 'maximize' ? 'desc' : 'asc'); }
      t.offset = 0;
      fetchTable().catch((e) => setStatus(e.message));
    });
    return th;
  }));
  const rows = page.rows.map((r) => {
    const values = view.pareto ? objectives.map((_, i) => (r.values && r.values.length ? r.values[i] : (i === 0 ? r.value : null))) : [r.value];
    const why = r.state === 'pruned' ? `stopped at step ${r.pruned_step ?? '—'}` : (r.reason || '');
    const tr = el('tr', { 'data-number': r.number, 'data-state': r.state, class: selected.has(r.number) ? 'selected' : '' },
      el('td', {}, trialLink(t.study, r.number)),
      el('td', { class: `state-${r.state}`, text: r.state + (r.feasible === false ? ' (infeasible)' : '') }),
      ...values.map((v) => el('td', { class: 'num', text: fmt(v) })),
      ...names.map((n) => el('td', { class: 'num', text: fmt(r.params[n]) })),
      el('td', { class: 'num', text: r.duration_s === null ? '—' : fmt(Number(r.duration_s.toFixed(2))) }),
      el('td', { class: 'num', text: fmt(r.step) }),
      el('td', { text: r.worker || '' }),
      el('td', { class: 'reason', text: why, title: why }));
    tr.addEventListener('click', (e) => {
      if (e.target.closest('a')) return;
      if (selected.has(r.number)) selected.delete(r.number); else selected.set(r.number, r);
      redrawSelection();
    });
    return tr;
  });
  const table = document.getElementById('trials');
  table.replaceChildren(head, ...rows);
  table.dataset.rows = String(rows.length);
  table.dataset.matched = String(page.matched);
  const first = page.matched ? page.offset + 1 : 0;
  const last = page.offset + rows.length;
  const prev = el('button', { id: 'trials-prev', text: '‹ previous' });
  const next = el('button', { id: 'trials-next', text: 'next ›' });
  prev.disabled = page.offset === 0;
  next.disabled = last >= page.matched;
  prev.addEventListener('click', () => { t.offset = Math.max(0, t.offset - t.limit); fetchTable(); });
  next.addEventListener('click', () => { t.offset += t.limit; fetchTable(); });
  document.getElementById('trials-pager').replaceChildren(prev, ' ', next,
    ` rows ${first}–${last} of ${page.matched} matching · ${plural(page.total, 'trial')} in all` +
    (selected.size ? ` · ${selected.size} selected (drawn in orange in the charts; click a row again to drop it)` : ' · click rows to mark them in the charts'));
}

// ---- one trial ----------------------------------------------------------------------------

const TOKEN_KEY = 'caviar-write-token';

// Where a trial came from: the trial it was forked from or retries, and the members whose
// checkpoints it copied (population-based training), each a link to that trial.
function lineageCard(name, t) {
  const a = t.user_attrs || {};
  const link = (n) => el('a', { href: `#/study/${encodeURIComponent(name)}/trial/${encodeURIComponent(n)}`, text: `trial ${n}` });
  const rows = [];
  if (Number.isInteger(a.forked_from)) rows.push(el('tr', {}, el('td', { text: 'forked from' }), el('td', {}, link(a.forked_from))));
  if (Number.isInteger(a.retry_of)) rows.push(el('tr', {}, el('td', { text: 'retry of' }), el('td', {}, link(a.retry_of))));
  for (const e of Array.isArray(a.pbt_exploits) ? a.pbt_exploits : []) {
    if (Number.isInteger(e.from)) rows.push(el('tr', {}, el('td', { text: `after step ${e.step}` }), el('td', {}, 'copied ', link(e.from), ' (PBT)')));
  }
  if (!rows.length) return [];
  return [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Lineage' }), el('table', { id: 'trial-lineage' }, ...rows))];
}

// The form that steers a running trial (panda mode): new values for the parameters it can
// change, pause or resume, stop. Writes need the token the dashboard printed at start-up; it is
// kept for this tab only.
function steerCard(name, t) {
  if (REPORT || t.state !== 'running') return [];
  const base = `/api/studies/${encodeURIComponent(name)}/trials/${encodeURIComponent(t.number)}`;
  const status = el('div', { id: 'steer-status', class: 'meta' });
  const token = el('input', { id: 'steer-token', type: 'password', placeholder: 'write token (printed at start-up)', autocomplete: 'off' });
  token.value = sessionStorage.getItem(TOKEN_KEY) || '';
  const post = async (path, payload) => {
    sessionStorage.setItem(TOKEN_KEY, token.value);
    const response = await fetch(base + path, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token.value}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  };
  const note = el('input', { id: 'steer-note', placeholder: 'note: why' });
  const force = el('input', { id: 'steer-force', type: 'checkbox' });
  const inputs = t.changeable.map((k) => el('input', { 'data-param': k, placeholder: fmt(t.params[k]), size: '10' }));
  const rows = t.changeable.map((k, i) => el('tr', {},
    el('td', { text: k }), el('td', { class: 'num', text: fmt(t.params[k]) }), el('td', {}, inputs[i]),
    el('td', { class: 'meta', text: t.distributions[k] || '' })));
  const ask = el('button', { id: 'steer-ask', type: 'button', text: 'Ask the change' });
  ask.addEventListener('click', async () => {
    const params = {};
    for (const input of inputs) if (input.value.trim() !== '') params[input.dataset.param] = input.value.trim();
    if (!Object.keys(params).length) { status.textContent = 'type a new value first'; return; }
    try {
      const r = await post('/params', { params, note: note.value || null, force: force.checked });
      status.textContent = `asked: ${r.changes.map((c) => `${c.name} ${fmt(c.current)} → ${fmt(c.new)}${c.forced ? ' (forced)' : ''}`).join(', ')}; it takes effect at the trial's next report`;
      for (const input of inputs) input.value = '';
    } catch (e) {
      status.textContent = `refused: ${e.message}`;
    }
  });
  const action = (what, label) => {
    const button = el('button', { id: `steer-${what}`, type: 'button', text: label });
    button.addEventListener('click', async () => {
      try {
        await post('/control', { action: what, note: note.value || null });
        status.textContent = `asked to ${what}; the trial does it within a second (a Python trial at its next report)`;
      } catch (e) {
        status.textContent = `refused: ${e.message}`;
      }
    });
    return button;
  };
  return [el('section', { class: 'card', id: 'steer', style: 'margin-top:1rem' },
    el('h2', { text: t.paused ? 'Steer this trial (paused)' : 'Steer this trial' }),
    el('div', {}, token),
    t.changeable.length ? el('table', { id: 'steer-params' }, ...rows)
      : el('p', { class: 'meta', text: 'none of its parameters can change while it runs' }),
    el('div', {}, note, ' ', el('label', {}, force, ' allow leaving the range'), ' ', ask),
    el('div', { style: 'margin-top:.5rem' }, t.paused ? action('resume', 'Resume') : action('pause', 'Pause'), ' ',
      action('stop', 'Stop: complete with its last value')),
    status)];
}

async function trialPage(name, number) {
  const t = await api(`/api/studies/${encodeURIComponent(name)}/trials/${encodeURIComponent(number)}`);
  const rows = Object.entries(t.params).map(([k, v]) => el('tr', {}, el('td', { text: k }), el('td', { class: 'num', text: fmt(v) }), el('td', { class: 'meta', text: t.distributions[k] || '' })));
  main.replaceChildren(
    el('h1', {}, el('a', { href: `#/study/${encodeURIComponent(name)}` }, name), ` · trial ${t.number}`),
    el('div', { class: 'meta', id: 'trial-meta' },
      el('span', { class: `state-${t.state}`, text: t.state + (t.feasible === false ? ' (infeasible)' : '') }),
      ` · value ${fmt(t.value)} · ${plural(t.intermediate.length, 'report')}` +
      (t.duration_s !== null ? ` · ${fmt(t.duration_s)} s` : '') + (t.worker ? ` · worker ${t.worker}` : '')),
    el('div', { class: 'grid' },
      el('section', { class: 'card' }, el('h2', { text: 'Parameters' }), el('table', { id: 'trial-params' }, ...rows)),
      el('section', { class: 'card' }, el('h2', { text: 'Intermediate values' }), el('div', { id: 'trial-curve', class: 'chart' }))),
    ...(t.error ? [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Reason' }), el('pre', { id: 'trial-error', text: t.error }))] : []),
    ...(t.feasible === false ? [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Infeasible: not among the best' }),
      el('pre', { id: 'trial-broken', text: (t.broken && t.broken.length ? t.broken : ['a constraint given by constraints_func']).join('\n') }))] : []),
    ...noteEditor(`/api/studies/${encodeURIComponent(name)}/trials/${encodeURIComponent(t.number)}/note`,
      t.user_attrs && typeof t.user_attrs.note === 'string' ? t.user_attrs.note : '', 'trial-note'),
    ...(t.user_attrs && Object.keys(t.user_attrs).filter((k) => k !== 'note').length ? [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'User attributes' }),
      el('table', { id: 'trial-attrs' }, ...Object.entries(t.user_attrs).filter(([k]) => k !== 'note').map(([k, v]) => el('tr', {}, el('td', { text: k }), el('td', { class: 'num', text: typeof v === 'number' ? fmt(v) : JSON.stringify(v) })))))] : []),
    ...(t.param_history && t.param_history.length ? [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Changes while it ran' }),
      el('table', { id: 'trial-changes' }, ...t.param_history.map((c) => el('tr', {},
        el('td', { text: c.name }),
        el('td', { class: 'num', text: `${c.old === null ? '?' : fmt(c.old)} → ${fmt(c.new)}${c.forced ? ' (forced)' : ''}` }),
        el('td', { class: 'meta', text: c.applied_step === null ? 'asked, not applied yet' : `after step ${c.applied_step}` }),
        el('td', { class: 'meta', text: `${c.who}${c.note ? ': ' + c.note : ''}` })))))] : []),
    ...lineageCard(name, t),
    ...(t.controls && t.controls.length ? [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Paused, resumed, stopped' }),
      el('table', { id: 'trial-controls' }, ...t.controls.map((c) => el('tr', {},
        el('td', { text: c.action }),
        el('td', { class: 'meta', text: c.applied_ms === null ? 'asked, not done yet' : (c.applied_step === null ? 'done before its first report' : `done after step ${c.applied_step}`) }),
        el('td', { class: 'meta', text: `${c.who}${c.note ? ': ' + c.note : ''}` })))))] : []),
    ...steerCard(name, t),
    ...(t.log ? [el('section', { class: 'card', style: 'margin-top:1rem' }, el('h2', { text: 'Output (last lines)' }), el('pre', { id: 'trial-log', text: t.log }))] : []));
  draw('trial-curve', {
    animation: false, tooltip: { trigger: 'axis' },
    grid: { left: 60, right: 20, top: 20, bottom: 40 },
    xAxis: { type: 'value', name: 'step', nameLocation: 'middle', nameGap: 25, minInterval: 1 },
    yAxis: { type: 'value', scale: true },
    series: [{
      type: 'line', data: t.intermediate, showSymbol: t.intermediate.length < 50,
      // Where a parameter changed while the trial ran (panda mode).
      markLine: {
        symbol: 'none', label: { formatter: (p) => p.name },
        data: (t.param_history || []).filter((c) => c.applied_step !== null)
          .map((c) => ({ xAxis: c.applied_step, name: `${c.name} → ${fmt(c.new)}` })),
      },
    }],
  }, t.intermediate.length);
  setStatus(`trial ${t.number} of ${name}`);
}

route();
