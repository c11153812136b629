// The dashboard's core: building elements (text is always a text node, never markup), calling
// the local API with the session's CSRF token, the hash router, the confirmation dialog.
// The pages themselves are in pages.js. No build step: this file is served as it is.
'use strict';

const BF = {
  session: null,
  pages: {},
  cleanups: [],
};

// h('td', {class: 'num'}, 'text', child, [more]): strings become text nodes; attributes are
// set with setAttribute; `on*` keys add listeners.
BF.h = function (tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  BF.append(el, kids);
  return el;
};

BF.append = function (el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
};

// A link inside the dashboard: `#/host/ID` with the id encoded, never a URL from a host.
BF.link = function (route, parts, text, attrs) {
  const path = [route, ...parts.map((p) => encodeURIComponent(p))].join('/');
  return BF.h('a', Object.assign({ href: '#/' + path }, attrs || {}), text);
};

BF.api = async function (path, options) {
  const opts = Object.assign({ credentials: 'same-origin' }, options || {});
  opts.headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
  const response = await fetch(path, opts);
  if (!response.ok) {
    const text = await response.text();
    throw new Error(text.trim() || response.status + ' ' + response.statusText);
  }
  return response.json();
};

BF.post = function (path, body) {
  return BF.api(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': BF.session.csrf },
    body: JSON.stringify(body || {}),
  });
};

// Roles as the controller names them; the controller still refuses what a role may not do.
BF.canSteer = function () {
  return BF.session && (BF.session.role === 'operator' || BF.session.role === 'admin');
};

BF.time = function (iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
};

BF.unixTime = function (secs) {
  return secs ? BF.time(new Date(secs * 1000).toISOString()) : '–';
};

BF.ago = function (iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  if (s < 86400) return Math.round(s / 3600) + 'h ago';
  return Math.round(s / 86400) + 'd ago';
};

const TONES = {
  ok: ['succeeded', 'completed', 'healthy', 'online', 'done', 'pass'],
  bad: ['failed', 'rollback_failed', 'unhealthy', 'offline', 'aborted', 'refused', 'fail', 'revoked'],
  warn: ['paused', 'rolled_back', 'awaiting_approval', 'major', 'warn', 'minor', 'frozen'],
  info: ['running', 'queued', 'patch', 'planned'],
};

BF.badge = function (text, tone) {
  let t = tone;
  if (!t) t = Object.keys(TONES).find((k) => TONES[k].includes(text)) || 'light';
  return BF.h('span', { class: 'badge ' + t, 'data-state': text }, String(text).replace(/_/g, ' '));
};

BF.table = function (headers, rows, attrs) {
  return BF.h('table', attrs || {},
    BF.h('thead', {}, BF.h('tr', {}, headers.map((x) => (x instanceof Node ? x : BF.h('th', {}, x))))),
    BF.h('tbody', {}, rows));
};

BF.kv = function (pairs) {
  return BF.h('table', { class: 'kv' }, BF.h('tbody', {},
    pairs.filter((p) => p).map(([k, v]) => BF.h('tr', {}, BF.h('th', {}, k), BF.h('td', {}, v)))));
};

BF.errorBox = function (err) {
  return BF.h('p', { class: 'error', role: 'alert' }, err.message || String(err));
};

// Asks before acting: resolves to {reason, rollback} or null when cancelled.
BF.confirm = function (title, text, withRollback) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const reason = document.getElementById('confirm-reason');
  const rollback = document.getElementById('confirm-rollback');
  reason.value = '';
  rollback.checked = false;
  document.getElementById('confirm-rollback-label').hidden = !withRollback;
  return new Promise((resolve) => {
    const cancel = document.getElementById('confirm-cancel');
    const form = document.getElementById('confirm-form');
    const done = (answer) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      done({ reason: reason.value.trim(), rollback: withRollback && rollback.checked });
    };
    const onCancel = (e) => {
      e.preventDefault();
      done(null);
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    reason.focus();
  });
};

// `#/hosts?tenant=acme` -> {page: 'hosts', args: [], params: URLSearchParams}
BF.route = function () {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter((p) => p).map((p) => decodeURIComponent(p));
  return { page: parts[0] || 'fleet', args: parts.slice(1), params: new URLSearchParams(query || '') };
};

BF.go = function (page, params) {
  const query = params && params.toString();
  location.hash = '#/' + page + (query ? '?' + query : '');
};

BF.render = async function () {
  for (const cleanup of BF.cleanups.splice(0)) cleanup();
  const route = BF.route();
  const page = BF.pages[route.page];
  for (const a of document.querySelectorAll('#nav a')) {
    const current = a.dataset.page === route.page || (route.page === 'host' && a.dataset.page === 'hosts') ||
      (route.page === 'rollout' && a.dataset.page === 'rollouts');
    a.classList.toggle('current', current);
  }
  const main = document.getElementById('main');
  const hash = location.hash;
  main.removeAttribute('data-ready');
  const view = BF.h('div', {});
  try {
    if (!page) throw new Error('no page ' + route.page);
    await page(view, route);
  } catch (err) {
    view.replaceChildren(BF.errorBox(err));
  }
  // A later navigation may have rendered meanwhile.
  if (location.hash === hash) {
    main.replaceChildren(view);
    main.setAttribute('data-ready', route.page);
    main.setAttribute('data-route', hash);
  }
};

BF.start = async function () {
  try {
    BF.session = await BF.api('/api/session');
  } catch (err) {
    document.getElementById('main').replaceChildren(BF.errorBox(err));
    return;
  }
  const s = BF.session;
  const scope = s.tenants.length ? s.tenants.join(', ') : 'all tenants';
  document.getElementById('who').textContent = s.name + ' · ' + s.role + ' · ' + scope + ' · ' + s.controller;
  document.body.dataset.role = s.role;
  window.addEventListener('hashchange', BF.render);
  BF.render();
};
