// Flightdeck sensor console: a page of the local collector. No build step, no
// dependencies. Every value shown comes from an agent's events: it is put in the
// page as text (textContent), never as HTML.
'use strict';

const API = '/console/api/v1';
const POLL_MS = 2000;
const FORCED_REFRESH_MS = 15000;
const COLORS = ['#1f4e8c', '#b3541e', '#2e7d32', '#7b1fa2', '#a11212', '#00695c', '#5d4037',
  '#37474f'];

const view = { name: null, id: null, cursor: null, refresh: null, refreshedAt: 0 };
const sessionsQuery = { sort: 'started', order: 'desc', offset: 0, limit: 50, agent: '',
  state: '', since: 'all' };
let timelineWindow = { follow: true, before: 'end', after: null };
let fleetSince = '1h';
let pollTimer = null;

// --- small helpers ----------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'text') node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

const count = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '-');
function when(iso, withDate) {
  if (!iso) return '-';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const time = date.toLocaleTimeString('en-GB', { hour12: false });
  return withDate ? `${date.toLocaleDateString('en-CA')} ${time}` : time;
}
const ms = (n) => (typeof n === 'number' ? `${count(Math.round(n))} ms` : '');
const short = (id) => (id ? String(id).slice(0, 8) : '-');
function badge(stateName) {
  return el('span', { class: `badge state-${stateName}`, text: stateName });
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

// A live refresh rebuilds a table: the control a keyboard user had focused in it (found
// again by its row's key and its place in the row) keeps the focus.
function keepingFocus(container, rebuild) {
  const active = document.activeElement;
  const row = active && container.contains(active) ? active.closest('tr[data-key]') : null;
  const place = row ? [...row.querySelectorAll('a, button')].indexOf(active) : -1;
  const key = row ? row.dataset.key : null;
  rebuild();
  if (key === null) return;
  const again = [...container.querySelectorAll('tr[data-key]')].find((r) => r.dataset.key === key);
  const target = again ? again.querySelectorAll('a, button')[place] : null;
  if (target) target.focus();
}
function main() { return document.getElementById('main'); }

// --- the API ----------------------------------------------------------------------------------

class LoggedOut extends Error {}

async function api(path, body) {
  const options = { credentials: 'same-origin', headers: { 'X-Flightdeck-Console': '1' } };
  if (body !== undefined) {
    options.method = 'POST';
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(API + path, options);
  let data = null;
  try { data = await answer.json(); } catch (error) { data = null; }
  if (answer.status === 401 && path !== '/login') throw new LoggedOut('log in');
  if (!answer.ok) throw new Error((data && data.error) || `HTTP ${answer.status}`);
  return data;
}

function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== '' && value !== null && value !== undefined) {
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

// --- login ------------------------------------------------------------------------------------

async function boot() {
  document.getElementById('dialog-close').addEventListener('click', closeDialog);
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  const fragment = location.hash.match(/^#token=([^&]+)/);
  if (fragment) {
    // The token leaves the address bar (and the history entry) before anything else.
    history.replaceState(null, '', `${location.pathname}#/sessions`);
    try { await api('/login', { token: decodeURIComponent(fragment[1]) }); } catch (e) { /* below */ }
  }
  try {
    await api('/login');
  } catch (error) {
    showLogin();
    return;
  }
  loggedIn();
}

function showLogin(message) {
  stopPolling();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  const input = el('input', { type: 'password', id: 'token', name: 'token', required: true,
    autocomplete: 'current-password', 'aria-describedby': 'token-help' });
  const status = el('p', { role: 'alert', class: message ? 'notice bad' : '', text: message || '' });
  const form = el('form', { class: 'login', 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title', text: 'Log in to the collector' }),
    el('label', { for: 'token' }, 'Collector token', input),
    el('p', { id: 'token-help', class: 'muted',
      text: 'The token sensors use: $FLIGHTDECK_TOKEN, or the file that `flightdeck-sensor '
        + 'collect` named (collector.token beside its database). It is sent once; the '
        + 'browser then keeps a session cookie.' }),
    el('button', { type: 'submit', class: 'primary', text: 'Log in' }), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('/login', { token: input.value });
    } catch (error) {
      status.className = 'notice bad';
      status.textContent = 'Wrong token.';
      input.focus();
      return;
    }
    input.value = '';
    loggedIn();
  });
  clear(main()).append(form);
  input.focus();
}

function loggedIn() {
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  if (!location.hash.startsWith('#/')) history.replaceState(null, '', '#/sessions');
  route();
  startPolling();
}

async function logout() {
  try { await api('/logout', {}); } catch (error) { /* logged out either way */ }
  showLogin();
}

// --- routing and live updates -----------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [name, id] = hash.split('/');
  for (const link of document.querySelectorAll('#nav a')) {
    const current = link.getAttribute('href') === `#/${name}`
      || (name === 'session' && link.id === 'nav-sessions');
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  view.name = name || 'sessions';
  view.id = id ? decodeURIComponent(id) : null;
  if (view.name === 'session' && view.id) {
    timelineWindow = { follow: true, before: 'end', after: null };
    renderSession(view.id);
  } else if (view.name === 'fleet') renderFleet();
  else if (view.name === 'directives') renderDirectives();
  else renderSessions();
}

function startPolling() {
  stopPolling();
  const tick = async () => {
    try {
      const changes = await api('/changes');
      const live = document.getElementById('live');
      live.textContent = `Live · ${when(changes.now)}`;
      // The cursor is taken before the view reads: a change made meanwhile shows at the
      // next tick. Idle is a matter of time, not of a change: a refresh now and then.
      const stale = Date.now() - view.refreshedAt > FORCED_REFRESH_MS;
      if ((changes.cursor !== view.cursor || stale) && view.refresh) {
        view.cursor = changes.cursor;
        view.refreshedAt = Date.now();
        await view.refresh();
      }
    } catch (error) {
      if (error instanceof LoggedOut) { showLogin('Your session ended: log in again.'); return; }
      document.getElementById('live').textContent = `Disconnected: ${error.message}`;
    }
    pollTimer = setTimeout(tick, POLL_MS);
  };
  pollTimer = setTimeout(tick, 0);
}

function stopPolling() { if (pollTimer) clearTimeout(pollTimer); pollTimer = null; }

async function guarded(work) {
  try {
    await work();
  } catch (error) {
    if (error instanceof LoggedOut) { showLogin('Your session ended: log in again.'); return; }
    const target = document.getElementById('view-error');
    if (target) { target.hidden = false; target.textContent = error.message; }
  }
}

function viewShell(title) {
  const shell = el('div', {}, el('h1', { id: 'view-title', text: title }),
    el('p', { id: 'view-error', class: 'notice bad', role: 'alert', hidden: true }));
  clear(main()).append(shell);
  return shell;
}

// --- sessions ---------------------------------------------------------------------------------

const SESSION_COLUMNS = [
  ['session', 'Session'], ['agent', 'Agent'], ['flavor', 'Flavor'], ['host', 'Host'],
  ['state', 'State'], ['started', 'Started'], ['last_seen', 'Last seen'],
  ['calls', 'Calls', true], ['tokens', 'Tokens', true], ['cost', 'Cost', true],
  ['errors', 'Errors', true]];

function renderSessions() {
  const shell = viewShell('Sessions');
  const agent = el('input', { id: 'filter-agent', type: 'search', value: sessionsQuery.agent,
    placeholder: 'any' });
  const stateSelect = el('select', { id: 'filter-state' },
    ['', 'active', 'idle', 'ended', 'stopped', 'blocked'].map((s) => el('option',
      { value: s, selected: s === sessionsQuery.state }, s || 'any')));
  const since = el('select', { id: 'filter-since' },
    [['all', 'any time'], ['15m', 'last 15 minutes'], ['1h', 'last hour'], ['24h', 'last day'],
      ['7d', 'last 7 days']].map(([v, label]) => el('option',
      { value: v, selected: v === sessionsQuery.since }, label)));
  const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter sessions' },
    el('label', { for: 'filter-agent' }, 'Agent', agent),
    el('label', { for: 'filter-state' }, 'State', stateSelect),
    el('label', { for: 'filter-since' }, 'Seen', since),
    el('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    Object.assign(sessionsQuery, { agent: agent.value.trim(), state: stateSelect.value,
      since: since.value, offset: 0 });
    guarded(refreshSessions);
  });
  stateSelect.addEventListener('change', () => form.requestSubmit());
  since.addEventListener('change', () => form.requestSubmit());
  const table = el('table', { id: 'sessions', 'aria-labelledby': 'view-title' },
    el('thead', {}, el('tr', {}, SESSION_COLUMNS.map(sortHeader))), el('tbody', {}));
  const pager = el('div', { class: 'pager', id: 'sessions-pager' });
  shell.append(form, el('p', { id: 'sessions-summary', class: 'muted', role: 'status' }), table,
    pager);
  view.refresh = refreshSessions;
  view.cursor = null;
  guarded(refreshSessions);
}

function sortHeader([key, label, numeric]) {
  const active = sessionsQuery.sort === key;
  const th = el('th', { scope: 'col', class: numeric ? 'num' : null,
    'aria-sort': active ? (sessionsQuery.order === 'asc' ? 'ascending' : 'descending') : 'none' },
  el('button', { type: 'button', 'data-sort': key,
    'aria-label': `Sort by ${label}`,
    onclick: () => {
      if (sessionsQuery.sort === key) {
        sessionsQuery.order = sessionsQuery.order === 'asc' ? 'desc' : 'asc';
      } else {
        sessionsQuery.sort = key;
        sessionsQuery.order = numeric || key === 'started' || key === 'last_seen' ? 'desc' : 'asc';
      }
      sessionsQuery.offset = 0;
      const head = document.querySelector('#sessions thead tr');
      clear(head).append(...SESSION_COLUMNS.map(sortHeader));
      head.querySelector(`button[data-sort="${key}"]`).focus();
      guarded(refreshSessions);
    } }, label, active ? (sessionsQuery.order === 'asc' ? ' ▲' : ' ▼') : ''));
  return th;
}

async function refreshSessions() {
  const page = await api(`/sessions${query(sessionsQuery)}`);
  if (view.name !== 'sessions') return;
  const body = document.querySelector('#sessions tbody');
  keepingFocus(body, () => {
    clear(body);
    const add = (session, depth) => {
      body.append(sessionRow(session, depth));
      for (const child of session.children || []) add(child, depth + 1);
    };
    for (const session of page.sessions) add(session, 0);
    if (!page.sessions.length) {
      body.append(el('tr', {}, el('td', { colspan: SESSION_COLUMNS.length,
        text: 'No sessions yet. Run an agent with FLIGHTDECK_SERVER and FLIGHTDECK_TOKEN set.' })));
    }
  });
  const last = Math.min(page.offset + page.limit, page.total);
  document.getElementById('sessions-summary').textContent = page.total
    ? `${page.offset + 1}–${last} of ${count(page.total)} ${page.nested ? 'top-level ' : ''}sessions`
      + (page.nested ? ' (sub-sessions nested under their parent)' : '')
    : '';
  const pager = clear(document.getElementById('sessions-pager'));
  pager.append(
    el('button', { type: 'button', text: 'Previous page', disabled: page.offset === 0,
      onclick: () => { sessionsQuery.offset = Math.max(0, page.offset - page.limit);
        guarded(refreshSessions); } }),
    el('button', { type: 'button', text: 'Next page', disabled: last >= page.total,
      onclick: () => { sessionsQuery.offset = page.offset + page.limit;
        guarded(refreshSessions); } }));
}

function sessionRow(s, depth) {
  const link = el('a', { href: `#/session/${encodeURIComponent(s.session_id)}`,
    'aria-label': `Session ${s.session_id} of ${s.agent_name || 'unknown agent'}` },
  short(s.session_id));
  return el('tr', { class: depth === 1 ? 'child' : depth > 1 ? 'child grandchild' : null,
    'data-session': s.session_id, 'data-key': s.session_id },
  el('td', {}, link, s.agent_role ? el('span', { class: 'muted', text: ` ${s.agent_role}` }) : null),
  el('td', { text: s.agent_name || '-' }), el('td', { text: s.flavor || '-' }),
  el('td', { text: s.hostname || '-' }), el('td', {}, badge(s.state_shown)),
  el('td', { text: when(s.started_at, true) }), el('td', { text: when(s.last_seen_at, true) }),
  el('td', { class: 'num', text: count(s.calls) }),
  el('td', { class: 'num', text: count(s.tokens) }),
  el('td', { class: 'num cost', text: s.cost_text }),
  el('td', { class: 'num', text: count(s.errors) }));
}

// --- one session ------------------------------------------------------------------------------

function renderSession(id) {
  const shell = viewShell(`Session ${short(id)}`);
  shell.append(
    el('div', { class: 'panel', id: 'session-facts' }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'danger', id: 'stop-session', text: 'Stop session',
        onclick: () => guarded(() => stopSession(id)) }),
      el('button', { type: 'button', id: 'operator', text: 'Operator actions…',
        onclick: () => guarded(() => openOperator(id)) }),
      el('span', { id: 'action-status', role: 'status', 'aria-live': 'polite' })),
    el('h2', { id: 'usage-title', text: 'Cumulative tokens' }),
    el('div', { id: 'usage' }),
    el('h2', { id: 'directives-title', text: 'Directives' }),
    el('div', { id: 'session-directives' }),
    el('h2', { id: 'timeline-title', text: 'Timeline' }),
    el('p', { id: 'timeline-summary', class: 'muted', role: 'status' }),
    el('div', { class: 'pager', id: 'timeline-pager' }),
    el('table', { id: 'timeline', 'aria-labelledby': 'timeline-title' },
      el('thead', {}, el('tr', {}, ['Time', 'Event', 'Provider', 'Model', 'In', 'Out', 'Cached',
        'Cost', 'Latency', 'Stream', 'Detail', 'Time axis', ''].map((label, i) => el('th',
        { scope: 'col', class: i >= 4 && i <= 8 ? 'num' : null, text: label })))),
      el('tbody', {})));
  view.refresh = () => refreshSession(id);
  view.cursor = null;
  guarded(() => refreshSession(id));
}

async function refreshSession(id) {
  // The three reads run at once; each part of the view shows as soon as its own arrives.
  const timeline = timelineWindow.follow ? loadTimeline(id, { before: 'end' }) : null;
  const usage = api(`/sessions/${id}/usage`);
  const detail = await api(`/sessions/${id}`);
  if (view.name !== 'session' || view.id !== id) return;
  showFacts(detail);
  document.getElementById('stop-session').disabled = detail.state === 'closed';
  showDirectives(document.getElementById('session-directives'), detail.directives);
  const points = await usage;
  if (view.name === 'session' && view.id === id) showUsage(points);
  if (timeline) await timeline;
}

function showFacts(s) {
  const facts = [
    ['Session', s.session_id], ['State', badge(s.state_shown)],
    ['Agent', `${s.agent_name || '-'} (${s.agent_type || '-'})`], ['Flavor', s.flavor || '-'],
    ['Host', s.hostname || '-'], ['Sensor', s.sensor_version || '-'],
    ['Started', when(s.started_at, true)], ['Last seen', when(s.last_seen_at, true)],
    ['Calls', count(s.calls)], ['Errors', count(s.errors)],
    ['Tokens', `${count(s.tokens_in)} in / ${count(s.tokens_out)} out`],
    ['Cost', el('span', { id: 'session-cost', text: s.cost_text })]];
  if (s.close_reason) facts.push(['Closed', s.close_reason]);
  if (s.parent_session_id) {
    facts.push(['Parent', el('a', { href: `#/session/${s.parent_session_id}` },
      short(s.parent_session_id))]);
  }
  if (s.children.length) {
    facts.push(['Sub-sessions', s.children.map((child) => el('a',
      { href: `#/session/${child}` }, `${short(child)} `))]);
  }
  if (s.policy) {
    const p = s.policy;
    facts.push(['Budget', `${count(p.token_limit)} tokens: warn ${p.warn_at_pct}%`
      + (p.degrade_to ? `, degrade to ${p.degrade_to} at ${p.degrade_at_pct}%` : '')
      + `, block ${p.block_at_pct}%`]);
  }
  const list = el('dl', { class: 'facts' });
  for (const [term, value] of facts) list.append(el('dt', { text: term }), el('dd', {}, value));
  clear(document.getElementById('session-facts')).append(list);
}

function showUsage(usage) {
  const target = clear(document.getElementById('usage'));
  const points = usage.points;
  if (!points.length) { target.append(el('p', { class: 'muted', text: 'No calls yet.' })); return; }
  const last = points[points.length - 1];
  const lines = [];
  if (usage.thresholds) {
    for (const [name, value] of Object.entries(usage.thresholds)) {
      if (name !== 'limit') lines.push({ label: `${name} ${count(value)}`, value });
    }
  }
  target.append(lineChart({
    label: `Cumulative tokens of the session: ${count(last[1])}`
      + (usage.thresholds ? ` of a budget of ${count(usage.thresholds.limit)}` : ''),
    times: points.map((p) => p[0]),
    series: [{ name: 'tokens', values: points.map((p) => p[1]) }],
    thresholds: lines,
  }), el('p', { class: 'muted' },
    `Tokens so far: ${count(last[1])}; cost so far: ${usage.cost_text}`
    + (usage.thresholds ? `; budget ${count(usage.thresholds.limit)} tokens` : '; no budget in force')));
}

async function loadTimeline(id, window) {
  const page = await api(`/sessions/${id}/timeline${query({ limit: 200, ...window })}`);
  if (view.name !== 'session' || view.id !== id) return;
  timelineWindow = { follow: window.before === 'end' || (!page.more_after && !window.after), ...window };
  const body = document.querySelector('#timeline tbody');
  const times = page.events.flatMap((e) => {
    const end = Date.parse(e.timestamp);
    return [end - (e.latency_ms || 0), end];
  });
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - start);
  keepingFocus(body, () => {
    clear(body);
    for (const event of page.events) body.append(timelineRow(id, event, start, span));
    if (!page.events.length) {
      body.append(el('tr', {}, el('td', { colspan: 13, text: 'No events yet.' })));
    }
  });
  document.getElementById('timeline-summary').textContent = `${page.events.length} events shown`
    + ` (of ${count(page.total_events)} stored, pre-call events folded into their calls);`
    + ` axis ${when(new Date(start).toISOString())} to ${when(new Date(start + span).toISOString())}`;
  const pager = clear(document.getElementById('timeline-pager'));
  pager.append(
    el('button', { type: 'button', text: 'First', disabled: !page.more_before,
      onclick: () => guarded(() => loadTimeline(id, {})) }),
    el('button', { type: 'button', text: 'Earlier', disabled: !page.more_before,
      onclick: () => guarded(() => loadTimeline(id, { before: page.first })) }),
    el('button', { type: 'button', text: 'Later', disabled: !page.more_after,
      onclick: () => guarded(() => loadTimeline(id, { after: page.last })) }),
    el('button', { type: 'button', text: 'Latest (follow)', disabled: timelineWindow.follow,
      onclick: () => guarded(() => loadTimeline(id, { before: 'end' })) }));
}

function timelineRow(id, e, start, span) {
  const kind = e.type === 'llm_error' ? 'error' : e.type.startsWith('policy_') ? 'policy'
    : e.type === 'directive_result' ? 'directive' : 'call';
  const end = Date.parse(e.timestamp);
  const began = end - (e.latency_ms || 0);
  const bar = el('div', { class: `bar${kind === 'error' ? ' error' : ''}${e.latency_ms ? '' : ' mark'}` });
  bar.style.left = `${((began - start) / span) * 100}%`;
  if (e.latency_ms) bar.style.width = `${Math.max(0.3, (e.latency_ms / span) * 100)}%`;
  const model = e.model_requested && e.model && e.model_requested !== e.model
    ? `${e.model_requested} → ${e.model}` : (e.model || e.model_requested || '');
  const stream = e.stream ? `ttft ${ms(e.stream.ttft_ms) || '?'}, ${count(e.stream.chunks)} chunks`
    + (e.stream.outcome && e.stream.outcome !== 'completed' ? `, ${e.stream.outcome}` : '') : '';
  const content = e.has_content ? el('button', { type: 'button', text: 'Content',
    'aria-label': `Show the captured content of the ${e.type} at ${when(e.timestamp)}`,
    onclick: () => guarded(() => showContent(id, e)) }) : '';
  return el('tr', { class: `kind-${kind}`, 'data-type': e.type, 'data-key': e.cursor },
    el('td', { text: when(e.timestamp) }), el('td', { text: e.type }),
    el('td', { text: e.provider || '' }), el('td', { class: 'model', text: model }),
    el('td', { class: 'num', text: e.tokens_in !== null ? count(e.tokens_in) : '' }),
    el('td', { class: 'num', text: e.tokens_out !== null ? count(e.tokens_out) : '' }),
    el('td', { class: 'num', text: e.tokens_cached ? count(e.tokens_cached) : '' }),
    el('td', { class: 'num', text: e.cost_text }),
    el('td', { class: 'num', text: ms(e.latency_ms) }), el('td', { text: stream }),
    el('td', { class: 'detail' }, eventDetail(e)),
    el('td', { class: 'bar-cell', 'aria-hidden': 'true' }, el('div', { class: 'bar-track' }, bar)),
    el('td', {}, content));
}

function eventDetail(e) {
  if (e.error) {
    return el('span', { class: 'error-text' }, `${e.error.class || 'error'}`
      + (e.error.http_status ? ` (HTTP ${e.error.http_status})` : '')
      + (e.error.message ? `: ${e.error.message}` : ''));
  }
  if (e.policy) {
    const p = e.policy;
    return `${p.decision || e.type}: ${p.reason || ''}`
      + (p.from_model || p.to_model ? ` (${p.from_model || '?'} → ${p.to_model || '?'})` : '')
      + (p.tokens_used !== null ? `; ${count(p.tokens_used)} of ${count(p.token_limit)} tokens` : '');
  }
  if (e.directive) {
    const d = e.directive;
    return `${d.name || d.action} ${d.status || ''}${d.said ? `: ${d.said}` : ''}`;
  }
  if (e.type === 'tool_call') return `tool ${e.tool_name || '?'}`;
  if (e.type === 'session_end') return `ended: ${e.close_reason || ''}`;
  return e.stop_reason ? `stop: ${e.stop_reason}` : '';
}

async function showContent(id, e) {
  const detail = await api(`/sessions/${id}/event${query({ cursor: e.cursor })}`);
  const body = el('div', {});
  if (detail.request !== undefined && detail.request !== null) {
    body.append(el('h3', { text: 'Request' }),
      el('pre', { class: 'content', text: JSON.stringify(detail.request, null, 2) }));
  }
  body.append(el('h3', { text: e.type === 'tool_call' ? 'Arguments' : 'Response' }),
    el('pre', { class: 'content', text: JSON.stringify(detail.event.content ?? null, null, 2) }));
  openDialog(`Captured content: ${e.type} at ${when(e.timestamp)}`, body);
}

function showDirectives(target, directives) {
  clear(target);
  if (!directives.length) {
    target.append(el('p', { class: 'muted', text: 'No directives issued.' }));
    return;
  }
  target.append(el('table', { class: 'directives', 'aria-label': 'Directives and their state' },
    el('thead', {}, el('tr', {}, ['Issued', 'Directive', 'Session', 'Action', 'State', 'Since',
      'Result'].map((label) => el('th', { scope: 'col', text: label })))),
    el('tbody', {}, directives.map((d) => el('tr', { 'data-directive': d.id },
      el('td', { text: when(d.issued_at, true) }), el('td', { text: short(d.id) }),
      el('td', {}, el('a', { href: `#/session/${d.session_id}` }, short(d.session_id))),
      el('td', { text: actionText(d) }), el('td', {}, badge(d.state)),
      el('td', { text: when(d.status_at || d.delivered_at || d.issued_at) }),
      el('td', { text: d.error ?? d.result ?? (d.reason ? `reason: ${d.reason}` : '') }))))));
}

function actionText(d) {
  if (d.action === 'custom') {
    const parameters = d.payload && d.payload.parameters ? JSON.stringify(d.payload.parameters) : '';
    return `custom: ${d.name} ${parameters}`;
  }
  if (d.action === 'degrade' && d.degrade_to) return `degrade → ${d.degrade_to}`;
  if (d.action === 'policy_update' && d.payload) return `budget ${count(d.payload.token_limit)}`;
  return d.action;
}

// --- the operator's buttons -------------------------------------------------------------------

async function stopSession(id) {
  const status = document.getElementById('action-status');
  const answer = await api('/actions/stop', { session: id, reason: 'stopped from the console' });
  status.textContent = `Stop issued (directive ${short(answer.directives[0].directive_id)}): `
    + 'the agent gets it with the answer to its next event or heartbeat.';
  await refreshSession(id);
}

async function openOperator(id) {
  const detail = await api(`/sessions/${id}`);
  const agent = detail.flavor || '';
  const status = el('p', { role: 'status', 'aria-live': 'polite', id: 'operator-status' });
  const run = async (path, body, what) => {
    try {
      const answer = await api(path, body);
      const n = answer.directives.length;
      status.className = 'notice';
      status.textContent = `${what}: ${n} directive${n === 1 ? '' : 's'} issued`
        + (answer.directives.length ? ` (${answer.directives.map((d) => short(d.directive_id)).join(', ')})` : '')
        + '. Their state shows under Directives.';
      if (view.refresh) await view.refresh();
    } catch (error) {
      if (error instanceof LoggedOut) throw error;
      status.className = 'notice bad';
      status.textContent = error.message;
    }
  };
  const field = (id_, label, attrs) => el('label', { for: id_ }, label, el('input', { id: id_, ...attrs }));
  const form = (legend, fields, button, submit) => {
    const node = el('form', { class: 'op', 'aria-label': legend },
      el('fieldset', {}, el('legend', { text: legend }), fields,
        el('button', { type: 'submit', class: button.danger ? 'danger' : 'primary', text: button.text })));
    node.addEventListener('submit', (event) => { event.preventDefault(); guarded(() => submit(node)); });
    return node;
  };
  const value = (node, name) => node.querySelector(`[name="${name}"]`).value;
  const body = el('div', {},
    el('p', {}, `Session ${detail.session_id}, agent `, el('strong', { text: agent || '(none)' }),
      ` (${detail.state_shown}).`),
    form('Stop this session', [field('op-stop-reason', 'Reason', { name: 'reason', value: '' })],
      { text: 'Stop session', danger: true },
      (node) => run('/actions/stop', { session: id, reason: value(node, 'reason') }, 'Stop session')),
    form(`Stop agent ${agent}`, [field('op-stopall-reason', 'Reason', { name: 'reason' })],
      { text: 'Stop agent', danger: true },
      (node) => run('/actions/stop', { agent, reason: value(node, 'reason') }, 'Stop agent')),
    form(`Degrade agent ${agent}`, [field('op-degrade-to', 'Model to use', { name: 'to', required: true })],
      { text: 'Degrade agent' },
      (node) => run('/actions/degrade', { agent, to: value(node, 'to') }, 'Degrade agent')),
    form(`Budget of agent ${agent}`, [
      field('op-budget-limit', 'Token limit', { name: 'limit', type: 'number', min: 1, required: true,
        value: detail.policy && detail.policy.scope === 'flavor' ? detail.policy.token_limit : '' }),
      field('op-budget-warn', 'Warn at %', { name: 'warn', type: 'number', min: 1, max: 100, value: 80 }),
      field('op-budget-degrade', 'Degrade at %', { name: 'degrade', type: 'number', min: 1, max: 100 }),
      field('op-budget-to', 'Degrade to model', { name: 'to' }),
      field('op-budget-block', 'Block at %', { name: 'block', type: 'number', min: 1, max: 100, value: 100 })],
    { text: 'Set budget' },
    (node) => run('/actions/budget', { agent, limit: value(node, 'limit'), warn: value(node, 'warn'),
      degrade: value(node, 'degrade'), to: value(node, 'to'), block: value(node, 'block') }, 'Set budget')),
    ...detail.registered.map((d) => customForm(d, id, agent, form, run)),
    detail.registered.length ? null
      : el('p', { class: 'muted', text: 'This agent registered no custom directives.' }),
    status);
  openDialog('Operator actions', body);
}

function customForm(directive, id, agent, form, run) {
  const slug = directive.name.replace(/[^A-Za-z0-9_-]/g, '_');
  const fields = (directive.parameters || []).map((p, index) => {
    const fieldId = `op-custom-${slug}-${index}`;
    const label = `${p.name} (${p.type}${p.required ? ', required' : ''})`;
    let input;
    if (Array.isArray(p.options) && p.options.length) {
      input = el('select', { id: fieldId, name: p.name, 'data-param': p.name },
        (p.required ? [] : [el('option', { value: '' }, '(default)')]).concat(
          p.options.map((option) => el('option', { value: String(option) }, String(option)))));
    } else if (['boolean', 'bool'].includes(String(p.type).toLowerCase())) {
      input = el('select', { id: fieldId, name: p.name, 'data-param': p.name },
        el('option', { value: '' }, '(default)'), el('option', { value: 'true' }, 'true'),
        el('option', { value: 'false' }, 'false'));
    } else {
      const numeric = ['integer', 'int', 'float', 'number'].includes(String(p.type).toLowerCase());
      input = el('input', { id: fieldId, name: p.name, 'data-param': p.name,
        type: numeric ? 'number' : 'text', step: numeric ? 'any' : null, required: !!p.required,
        placeholder: p.default !== undefined && p.default !== null ? String(p.default) : '' });
    }
    return el('label', { for: fieldId, title: p.description || '' }, label, input);
  });
  const scope = el('select', { name: 'scope', id: `op-custom-${slug}-scope` },
    el('option', { value: 'session' }, 'this session'), el('option', { value: 'agent' }, 'every running session of the agent'));
  fields.push(el('label', { for: `op-custom-${slug}-scope` }, 'Run in', scope));
  return form(`Run ${directive.name}` + (directive.description ? `: ${directive.description}` : ''),
    fields, { text: `Run ${directive.name}` }, (node) => {
      const parameters = {};
      for (const input of node.querySelectorAll('[data-param]')) parameters[input.dataset.param] = input.value;
      const target = scope.value === 'agent' ? { agent } : { session: id };
      return run('/actions/directive', { name: directive.name, parameters, ...target },
        `Run ${directive.name}`);
    });
}

function openDialog(title, body) {
  const dialog = document.getElementById('dialog');
  document.getElementById('dialog-title').textContent = title;
  clear(document.getElementById('dialog-body')).append(body);
  if (!dialog.open) dialog.showModal();
  const first = dialog.querySelector('#dialog-body input, #dialog-body select, #dialog-body button');
  if (first) first.focus();
}

function closeDialog() { document.getElementById('dialog').close(); }

// --- directives -------------------------------------------------------------------------------

function renderDirectives() {
  const shell = viewShell('Directives');
  shell.append(el('p', { class: 'muted', text: 'The newest directives and what became of each: '
    + 'issued, delivered (handed to the agent), then acknowledged, success or error.' }),
  el('div', { id: 'all-directives' }));
  view.refresh = async () => {
    const page = await api('/directives?limit=100');
    if (view.name === 'directives') showDirectives(document.getElementById('all-directives'), page.directives);
  };
  view.cursor = null;
  guarded(view.refresh);
}

// --- the fleet --------------------------------------------------------------------------------

function renderFleet() {
  const shell = viewShell('Fleet');
  const since = el('select', { id: 'fleet-since' },
    [['15m', 'last 15 minutes'], ['1h', 'last hour'], ['6h', 'last 6 hours'], ['24h', 'last day'],
      ['7d', 'last 7 days']].map(([v, label]) => el('option', { value: v, selected: v === fleetSince }, label)));
  since.addEventListener('change', () => { fleetSince = since.value; guarded(refreshFleet); });
  shell.append(el('div', { class: 'filters' }, el('label', { for: 'fleet-since' }, 'Window', since)),
    el('div', { id: 'fleet' }));
  view.refresh = refreshFleet;
  view.cursor = null;
  guarded(refreshFleet);
}

async function refreshFleet() {
  const data = await api(`/fleet${query({ since: fleetSince })}`);
  if (view.name !== 'fleet') return;
  // Each bucket at its end: the last one ends now.
  const times = Array.from({ length: data.buckets }, (_, i) => new Date(Date.parse(data.start)
    + (i + 1) * data.bucket_seconds * 1000).toISOString());
  const chartOf = (groups, key, what) => lineChart({
    label: `${what} per bucket of ${Math.round(data.bucket_seconds)} s`,
    times, width: 520,
    series: groups.slice(0, COLORS.length).map((g) => ({ name: g.name, values: g[key] })) });
  const target = clear(document.getElementById('fleet'));
  target.append(
    el('div', { class: 'grid2 charts' },
      el('section', { 'aria-labelledby': 'fleet-agent-calls' },
        el('h2', { id: 'fleet-agent-calls', text: 'Calls per agent' }), chartOf(data.agents, 'calls', 'Calls')),
      el('section', { 'aria-labelledby': 'fleet-model-tokens' },
        el('h2', { id: 'fleet-model-tokens', text: 'Tokens per model' }), chartOf(data.models, 'tokens', 'Tokens')),
      el('section', { 'aria-labelledby': 'fleet-agent-cost' },
        el('h2', { id: 'fleet-agent-cost', text: 'Cost per agent (USD)' }), chartOf(data.agents, 'cost', 'Cost')),
      el('section', { 'aria-labelledby': 'fleet-agent-errors' },
        el('h2', { id: 'fleet-agent-errors', text: 'Errors per agent' }), chartOf(data.agents, 'errors', 'Errors'))),
    totalsTable('Per agent', 'fleet-agents', data.agents),
    totalsTable('Per model', 'fleet-models', data.models),
    el('div', { class: 'grid2' },
      el('section', {}, el('h2', { id: 'slowest-title', text: 'Slowest calls' }),
        el('table', { 'aria-labelledby': 'slowest-title', id: 'fleet-slowest' },
          el('thead', {}, el('tr', {}, ['Latency', 'Agent', 'Model', 'When', 'Session'].map((l, i) =>
            el('th', { scope: 'col', class: i === 0 ? 'num' : null, text: l })))),
          el('tbody', {}, data.slowest.map((c) => el('tr', {},
            el('td', { class: 'num', text: ms(c.latency_ms) }), el('td', { text: c.agent }),
            el('td', { text: c.model || '' }), el('td', { text: when(c.timestamp, true) }),
            el('td', {}, el('a', { href: `#/session/${c.session_id}` }, short(c.session_id)))))))),
      el('section', {}, el('h2', { id: 'errors-title', text: 'Error mix' }),
        data.errors.length ? el('table', { 'aria-labelledby': 'errors-title', id: 'fleet-errors' },
          el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Error class' }),
            el('th', { scope: 'col', class: 'num', text: 'Calls' }))),
          el('tbody', {}, data.errors.map((e) => el('tr', {}, el('td', { text: e.class }),
            el('td', { class: 'num', text: count(e.count) })))))
          : el('p', { class: 'muted', text: 'No errors in this window.' }))),
    el('p', { class: 'muted', text: `${count(data.scanned)} calls in the window`
      + (data.truncated ? ' (only the first were read)' : '') }));
}

function totalsTable(title, id, groups) {
  return el('section', {}, el('h2', { id: `${id}-title`, text: title }),
    el('table', { id, 'aria-labelledby': `${id}-title` },
      el('thead', {}, el('tr', {}, ['Name', 'Calls', 'Tokens', 'Cost', 'Errors'].map((l, i) =>
        el('th', { scope: 'col', class: i ? 'num' : null, text: l })))),
      el('tbody', {}, groups.map((g) => el('tr', {}, el('td', { text: g.name }),
        el('td', { class: 'num', text: count(g.total_calls) }),
        el('td', { class: 'num', text: count(g.total_tokens) }),
        el('td', { class: 'num', text: g.cost_text }),
        el('td', { class: 'num', text: count(g.total_errors) }))))));
}

// --- charts (SVG, drawn here) -----------------------------------------------------------------

function lineChart({ label, times, series, thresholds = [], width = 900 }) {
  const height = 220; const left = 50; const right = thresholds.length ? 110 : 16; const top = 12;
  const bottom = 28;
  const values = series.flatMap((s) => s.values).concat(thresholds.map((t) => t.value));
  const max = Math.max(0, ...values) || 1;
  const x = (i) => left + (times.length > 1 ? (i / (times.length - 1)) : 0.5) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': label });
  chart.append(svg('line', { x1: left, y1: y(0), x2: width - right, y2: y(0), stroke: '#767676' }),
    svg('text', { x: 4, y: y(max) + 4, text: compact(max) }),
    svg('text', { x: 4, y: y(0), text: '0' }),
    svg('text', { x: left, y: height - 8, text: when(times[0]) }),
    svg('text', { x: width - right, y: height - 8, 'text-anchor': 'end', text: when(times[times.length - 1]) }));
  for (const t of thresholds) {
    chart.append(svg('line', { x1: left, x2: width - right, y1: y(t.value), y2: y(t.value),
      stroke: '#a11212', 'stroke-dasharray': '5 4' }),
    svg('text', { x: width - right + 4, y: y(t.value) + 4, text: t.label }));
  }
  series.forEach((s, index) => {
    const color = COLORS[index % COLORS.length];
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { points, fill: 'none', stroke: color, 'stroke-width': 2 }));
  });
  const legend = el('div', { class: 'legend', 'aria-hidden': 'true' }, series.map((s, index) => {
    const swatch = el('span', { class: 'swatch' });
    swatch.style.background = COLORS[index % COLORS.length];
    return el('span', {}, swatch, s.name);
  }));
  return el('figure', {}, chart, legend);
}

function compact(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n < 1 ? n.toFixed(3) : String(Math.round(n));
}

boot();
