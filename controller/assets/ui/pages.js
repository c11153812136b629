// The dashboard's pages: Fleet, Hosts, Host, Rollouts, Rollout (live) and Plan. Each renders
// into the view it is given, with BF.h only: whatever a host reported is inserted as text.
'use strict';

(function () {
  const { h, link, badge, table, kv } = BF;
  // Appends nodes, text and (nested) arrays of them; the DOM's own append would print arrays.
  const add = (el, ...kids) => BF.append(el, kids);

  // ---- Fleet ---------------------------------------------------------------------------------

  const COUNT_CARDS = [
    ['hosts', 'Hosts', '', ''],
    ['patch', 'Need a patch update', 'update=patch', 'warn'],
    ['minor', 'Need a minor update', 'update=minor', 'warn'],
    ['major', 'Major behind (manual)', 'update=major', ''],
    ['unhealthy', 'Unhealthy', 'health=unhealthy', 'bad'],
    ['offline', 'Offline', 'online=offline', 'bad'],
    ['maintenance', 'In maintenance', '', ''],
    ['window_open', 'Window open now', '', ''],
    ['frozen', 'Frozen', '', ''],
  ];

  BF.pages.fleet = async function (view) {
    const fleet = await BF.api('/api/fleet');
    const c = fleet.counts;
    const cards = COUNT_CARDS.map(([key, label, filter, tone]) => {
      const attrs = { class: 'card ' + (c[key] ? tone : ''), 'data-count': key };
      const body = [h('div', { class: 'n' }, c[key]), h('div', { class: 'l' }, label)];
      return filter ? h('a', Object.assign({ href: '#/hosts?' + filter }, attrs), body) : h('div', attrs, body);
    });
    const latest = fleet.latest
      ? [h('strong', { id: 'latest' }, fleet.latest), ' — ', fleet.latest_source || 'unknown source']
      : [h('strong', { id: 'latest' }, 'none'), ' — no release is set and too few hosts report one'];
    const overrides = Object.entries(fleet.tenant_latest || {});
    add(view, 
      h('h1', {}, 'Fleet'),
      h('p', { class: 'sub' }, 'Latest release: ', latest,
        overrides.length ? ['; tenants with their own: ', overrides.map(([t, v]) => t + ' ' + v).join(', ')] : ''),
      h('div', { class: 'cards', id: 'fleet-counts' }, cards),
      h('div', { class: 'grid2' },
        h('div', { class: 'panel' }, h('h2', {}, 'Hosts per version and tenant'),
          h('div', { class: 'chart-box' }, h('canvas', { id: 'versions-chart' }))),
        h('div', { class: 'panel' }, h('h2', {}, 'Versions'), versionsTable(fleet))),
      h('div', { class: 'panel' }, h('h2', {}, 'Tenants'), tenantsTable(fleet)),
      h('p', { class: 'muted' }, 'As of ', BF.unixTime(fleet.taken_at)));
    drawVersionChart(view.querySelector('#versions-chart'), fleet);
  };

  function versionsTable(fleet) {
    const tenants = fleet.tenants.map((t) => t.tenant);
    const rows = fleet.versions.map((v) => {
      const total = Object.values(v.by_tenant).reduce((a, b) => a + b, 0);
      const versionLink = h('a', { href: '#/hosts?version=' + encodeURIComponent(v.version) }, v.version);
      return h('tr', { 'data-version': v.version },
        h('td', {}, versionLink, v.version === fleet.latest ? [' ', badge('latest', 'ok')] : ''),
        h('td', { class: 'num total' }, total),
        tenants.map((t) => h('td', { class: 'num' }, v.by_tenant[t] || '')));
    });
    const headers = ['Version', h('th', { class: 'num' }, 'Hosts'), tenants.map((t) => h('th', { class: 'num' }, t || '(none)'))];
    return table(headers.flat(), rows, { id: 'versions-table' });
  }

  function tenantsTable(fleet) {
    const cols = ['hosts', 'patch', 'minor', 'major', 'unhealthy', 'offline', 'maintenance'];
    const rows = fleet.tenants.map((t) => h('tr', { 'data-tenant': t.tenant },
      h('td', {}, h('a', { href: '#/hosts?tenant=' + encodeURIComponent(t.tenant) }, t.tenant || '(none)')),
      cols.map((k) => h('td', { class: 'num' }, t[k]))));
    return table(['Tenant', cols.map((k) => h('th', { class: 'num' }, k))].flat(), rows, { id: 'tenants-table' });
  }

  const PALETTE = ['#2f6fb3', '#e08a1e', '#1f8a4c', '#8e44ad', '#c0392b', '#16a2a2', '#7b8794', '#b7791f'];

  function drawVersionChart(canvas, fleet) {
    if (typeof Chart === 'undefined' || !canvas) return;
    const versions = fleet.versions.map((v) => v.version).reverse();
    const datasets = fleet.tenants.map((t, i) => ({
      label: t.tenant || '(none)',
      data: versions.map((v) => fleet.versions.find((x) => x.version === v).by_tenant[t.tenant] || 0),
      backgroundColor: PALETTE[i % PALETTE.length],
    }));
    const chart = new Chart(canvas, {
      type: 'bar',
      data: { labels: versions, datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: 'bottom' } },
      },
    });
    BF.cleanups.push(() => chart.destroy());
  }

  // ---- Hosts ---------------------------------------------------------------------------------

  const FILTERS = [
    ['health', 'Health', ['healthy', 'unhealthy']],
    ['online', 'Connection', ['online', 'offline']],
    ['update', 'Update', ['patch', 'minor', 'major', 'none']],
  ];
  const COLUMNS = [
    ['host', 'Host'], ['tenant', 'Tenant'], ['version', 'Version'], ['update', 'Update'],
    ['online', 'Connection'], ['health', 'Health'], ['last_seen', 'Last seen'], [null, 'Last job'],
  ];

  BF.pages.hosts = async function (view, route) {
    const params = route.params;
    const data = await BF.api('/api/hosts?' + params.toString());
    const set = (key, value) => {
      const next = new URLSearchParams(params);
      if (value) next.set(key, value); else next.delete(key);
      if (key !== 'page') next.delete('page');
      BF.go('hosts', next);
    };
    const select = (key, label, options) => h('label', {}, label,
      h('select', { id: 'filter-' + key, onchange: (e) => set(key, e.target.value) },
        h('option', { value: '' }, 'any'),
        options.map((o) => h('option', { value: o, selected: params.get(key) === o }, o || '(none)'))));
    let typing;
    const search = h('input', {
      type: 'search', id: 'hosts-search', placeholder: 'host, tenant, version, label=value', value: params.get('q') || '',
      oninput: (e) => { clearTimeout(typing); typing = setTimeout(() => set('q', e.target.value.trim()), 350); },
    });
    const sort = params.get('sort') || 'host';
    const dir = params.get('dir') || 'asc';
    const headers = COLUMNS.map(([key, label]) => {
      if (!key) return h('th', {}, label);
      const arrow = key === sort ? (dir === 'asc' ? ' ▲' : ' ▼') : '';
      return h('th', {
        class: 'sortable', 'data-sort': key,
        onclick: () => {
          const next = new URLSearchParams(params);
          next.set('sort', key);
          next.set('dir', key === sort && dir === 'asc' ? 'desc' : 'asc');
          BF.go('hosts', next);
        },
      }, label, h('span', { class: 'arrow' }, arrow));
    });
    const rows = data.rows.map(hostRow);
    const pager = h('div', { class: 'pager' },
      h('button', { class: 'secondary', id: 'page-prev', disabled: data.page <= 1, onclick: () => set('page', String(data.page - 1)) }, '‹ Previous'),
      h('span', { id: 'page-info' }, 'Page ', data.page, ' of ', data.pages, ' · ', data.matched, ' of ', data.total, ' hosts'),
      h('button', { class: 'secondary', id: 'page-next', disabled: data.page >= data.pages, onclick: () => set('page', String(data.page + 1)) }, 'Next ›'),
      h('label', { class: 'check' }, 'per page',
        h('select', { id: 'page-size', onchange: (e) => set('size', e.target.value) },
          [50, 100, 200, 500].map((n) => h('option', { value: n, selected: data.size === n }, n)))));
    add(view, 
      h('h1', {}, 'Hosts'),
      h('div', { class: 'filters' },
        h('label', {}, 'Search', search),
        select('tenant', 'Tenant', data.tenants),
        select('version', 'Version', data.versions),
        FILTERS.map(([key, label, options]) => select(key, label, options))),
      table(headers, rows.length ? rows : [h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No host matches.'))], { id: 'hosts-table' }),
      pager,
      h('p', { class: 'muted' }, 'As of ', BF.unixTime(data.taken_at)));
  };

  function hostRow(r) {
    const job = r.last_job;
    return h('tr', { 'data-host': r.host_id },
      h('td', {}, link('host', [r.host_id], r.host_id)),
      h('td', {}, r.tenant),
      h('td', { class: 'version' }, r.version || 'unknown'),
      h('td', {}, r.update ? badge(r.update) : '–'),
      h('td', {}, r.revoked ? badge('revoked') : badge(r.online ? 'online' : 'offline'), r.frozen ? [' ', badge('frozen')] : ''),
      h('td', {}, badge(r.healthy ? 'healthy' : 'unhealthy'), r.healthy ? '' : h('div', { class: 'muted reasons' }, r.health_reasons.join('; '))),
      h('td', {}, BF.ago(r.last_seen)),
      h('td', {}, job ? [job.kind, ' ', job.target || '', ' ', badge(job.state)] : '–'));
  }

  // ---- Host ----------------------------------------------------------------------------------

  BF.pages.host = async function (view, route) {
    const id = route.args[0] || '';
    const [data, jobs] = await Promise.all([
      BF.api('/api/hosts/' + encodeURIComponent(id)),
      BF.api('/api/hosts/' + encodeURIComponent(id) + '/jobs'),
    ]);
    const r = data.host;
    const inv = data.inventory || {};
    const health = inv.health || {};
    const git = inv.git || {};
    const migrations = inv.migrations || {};
    add(view, 
      h('h1', { id: 'host-title' }, r.host_id),
      h('p', { class: 'sub' }, r.tenant ? 'tenant ' + r.tenant + ' · ' : '',
        badge(r.online ? 'online' : 'offline'), ' ', badge(r.healthy ? 'healthy' : 'unhealthy'),
        r.revoked ? [' ', badge('revoked')] : '', r.frozen ? [' ', badge('frozen')] : '',
        r.job_in_progress ? [' ', badge('job running', 'info')] : ''),
      h('div', { class: 'grid2' },
        h('div', { class: 'panel' }, h('h2', {}, 'Inventory'), kv([
          ['Version', h('span', { id: 'host-version' }, r.version || 'unknown')],
          ['Update available', r.update || 'none'],
          ['Newest tag in its repository', inv.newest_tag || '–'],
          ['Version file', inv.version_file || '–'],
          ['Git', [git.tag || '(no release tag)', ' ', h('span', { class: 'tag' }, (git.head || '').slice(0, 12)), git.dirty ? [' ', badge('dirty', 'warn')] : '']],
          ['Migrations', migrations.known ? (migrations.pending ? 'pending' : 'up to date') : 'unknown'],
          ['PHP', r.php_version || '–'],
          ['Agent', r.agent_version || '–'],
          ['Labels', Object.entries(r.labels || {}).map(([k, v]) => k + '=' + v).join(', ') || '–'],
          ['Last seen', BF.time(r.last_seen)],
          ['Inventory taken', BF.unixTime(inv.collected_at)],
          ['Disks', (inv.disks || []).map((d) => h('div', {}, d.role, ' ', d.path, ': ', gib(d.free_bytes), ' free of ', gib(d.total_bytes)))],
        ])),
        h('div', {},
          h('div', { class: 'panel' }, h('h2', {}, 'Health'), healthPanel(r, inv, health)),
          h('div', { class: 'panel' }, h('h2', {}, 'Maintenance window'), windowPanel(r)))),
      h('div', { class: 'panel', id: 'job-history' }, h('h2', {}, 'Job history'), jobList(id, jobs)));
  };

  function gib(bytes) {
    return (bytes / 1073741824).toFixed(1) + ' GiB';
  }

  function healthPanel(r, inv, health) {
    // The row's reasons hold the errors too; those are listed on their own below.
    const errors = new Set(inv.errors || []);
    const reasons = (r.health_reasons || []).filter((x) => !errors.has(x));
    const failing = (health.checks || []).filter((c) => c.status !== 'pass');
    const isNew = (c) => reasons.some((x) => x.includes(c.name));
    const checks = failing.map((c) => h('tr', {},
      h('td', {}, badge(c.status)), h('td', {}, c.name), h('td', {}, c.source),
      h('td', {}, isNew(c) ? badge('new', 'bad') : badge('known', 'light')), h('td', { class: 'muted' }, c.detail)));
    return [
      h('h3', {}, 'Health reasons (what newly fails)'),
      reasons.length ? h('ul', { class: 'plain', id: 'host-reasons' }, reasons.map((x) => h('li', {}, x)))
        : h('p', { class: 'muted' }, 'Nothing: no check fails that did not fail before.'),
      (inv.errors || []).length ? [h('h3', {}, 'Errors reading the host'),
        h('ul', { class: 'plain', id: 'host-errors' }, inv.errors.map((x) => h('li', {}, x)))] : '',
      h('h3', {}, 'Failing checks (known failures are accepted in the agent\'s config)'),
      checks.length ? table(['Status', 'Check', 'Source', '', 'Detail'], checks) : h('p', { class: 'muted' }, 'None.'),
      (inv.migrations || {}).error ? [h('h3', {}, 'Migration status error'), h('pre', {}, inv.migrations.error)] : '',
    ];
  }

  function windowPanel(r) {
    const w = r.window;
    if (!w) return h('p', {}, 'None: updates may start any time.');
    return kv([
      ['Window', h('span', { class: 'tag' }, w.cron + ' ' + w.duration + ' ' + w.tz)],
      ['Set on', w.source],
      ['Now', w.open_now ? badge('open', 'ok') : badge('closed', 'light')],
      ['Next opening', BF.time(w.next_open)],
    ]);
  }

  function jobList(id, page) {
    const box = h('div', {});
    const addPage = (p) => {
      if (!p.jobs.length && !box.childNodes.length) add(box, h('p', { class: 'muted' }, 'No job yet.'));
      add(box, p.jobs.map(jobDetails));
      if (p.next_page_token) {
        const more = h('button', {
          class: 'secondary', onclick: async () => {
            more.disabled = true;
            try {
              const next = await BF.api('/api/hosts/' + encodeURIComponent(id) + '/jobs?page_token=' + encodeURIComponent(p.next_page_token));
              more.remove();
              addPage(next);
            } catch (err) {
              more.replaceWith(BF.errorBox(err));
            }
          },
        }, 'Older jobs');
        add(box, more);
      }
    };
    addPage(page);
    return box;
  }

  function jobDetails(j) {
    const list = (title, items) => (items && items.length ? [h('h3', {}, title), h('ul', { class: 'plain' }, items.map((x) => h('li', {}, x)))] : '');
    const before = new Set(j.failing_before || []);
    const newlyFailing = (j.failing_after || []).filter((x) => !before.has(x));
    const steps = (j.steps || []).map((s) => h('tr', {},
      h('td', {}, s.name), h('td', {}, badge(s.state)),
      h('td', { class: 'num' }, s.duration_s === null || s.duration_s === undefined ? '–' : s.duration_s + ' s'),
      h('td', {}, s.output_tail ? h('pre', {}, s.output_tail) : h('span', { class: 'muted' }, '–'))));
    return h('details', { 'data-job': j.job_id },
      h('summary', {}, h('strong', {}, j.kind, ' ', j.target || ''), ' ', badge(j.state), ' · created ',
        BF.time(j.created_at), j.created_by ? ' by ' + j.created_by : '',
        j.finished_at ? ' · finished ' + BF.time(j.finished_at) : '', j.backup_id ? ' · backup ' + j.backup_id : ''),
      h('div', {},
        kv([['Job', h('span', { class: 'tag' }, j.job_id)], j.rollout_id ? ['Rollout', link('rollout', [j.rollout_id], j.rollout_id)] : null,
          ['From', j.from_version || '–'], j.failed_step ? ['Failed step', j.failed_step] : null,
          j.reason ? ['Reason', j.reason] : null, j.backup_path ? ['Backup', j.backup_path] : null]),
        list('Checks failing after it that did not before', newlyFailing),
        list('Checks failing before it (known)', j.failing_before),
        list('Checks failing after the rollback', j.failing_after_rollback),
        list('Default config files that changed', j.config_changes),
        steps.length ? [h('h3', {}, 'Steps'), table(['Step', 'State', h('th', { class: 'num' }, 'Took'), 'Output (tail)'], steps)] : ''));
  }

  // ---- Rollouts ------------------------------------------------------------------------------

  const ACTIVE = ['running', 'paused', 'awaiting_approval', 'planned'];

  BF.pages.rollouts = async function (view) {
    const data = await BF.api('/api/rollouts');
    const newest = data.rollouts.slice().reverse();
    const group = (title, list, id) => [h('h2', {}, title, ' (', list.length, ')'),
      list.length ? table(['Rollout', 'Target', 'State', 'Progress', 'Failures', 'Created'], list.map(rolloutRow), { id })
        : h('p', { class: 'muted' }, 'None.')];
    add(view, 
      h('h1', {}, 'Rollouts'),
      h('p', { class: 'sub' }, 'Start one from the CLI (', h('span', { class: 'tag' }, 'boltfleet rollout start'), ') after a dry run on the ', h('a', { href: '#/plan' }, 'Plan'), ' page.'),
      group('In progress', newest.filter((r) => ACTIVE.includes(r.state)), 'rollouts-active'),
      group('Finished', newest.filter((r) => !ACTIVE.includes(r.state)), 'rollouts-finished'));
  };

  function counts(r) {
    const hosts = r.waves.flatMap((w) => w.hosts);
    const done = hosts.filter((x) => x.state !== 'pending' && x.state !== 'running').length;
    return { done, total: hosts.length };
  }

  function rolloutRow(r) {
    const c = counts(r);
    return h('tr', { 'data-rollout': r.id },
      h('td', {}, link('rollout', [r.id], r.id)), h('td', {}, r.target), h('td', {}, badge(r.state)),
      h('td', {}, c.done, ' / ', c.total), h('td', { class: 'num' }, r.failures),
      h('td', {}, BF.time(r.created_at), ' by ', r.created_by));
  }

  // ---- Rollout (live) ------------------------------------------------------------------------

  const ACTIONS = [
    ['pause', 'Pause', (r) => r.state === 'running', 'No new host starts; hosts in flight finish.', ''],
    ['resume', 'Resume', (r) => r.state === 'paused', 'Accepts the failures so far and goes on.', ''],
    ['promote', 'Promote', (r) => r.awaiting_promotion && ACTIVE.includes(r.state), 'Lets the next wave start once the current one has soaked.', ''],
    ['approve', 'Approve', (r) => r.state === 'awaiting_approval' && r.created_by !== BF.session.name, 'Approves the rollout (you are not its creator).', ''],
    ['abort', 'Abort…', (r) => ACTIVE.includes(r.state), 'Stops the rollout for good.', 'danger'],
  ];

  BF.pages.rollout = async function (view, route) {
    const id = route.args[0] || '';
    const first = await BF.api('/api/rollouts/' + encodeURIComponent(id));
    const body = h('div', {});
    const live = h('span', { class: 'live', id: 'live' }, 'connecting…');
    const problem = h('div', {});
    const show = (r) => body.replaceChildren(rolloutBody(r));
    show(first);
    add(view, h('h1', {}, 'Rollout ', h('span', { class: 'tag' }, first.id), ' to ', first.target, ' ', live), problem, body);
    const events = new EventSource('/api/rollouts/' + encodeURIComponent(id) + '/events');
    events.addEventListener('open', () => { live.textContent = 'live'; live.classList.add('on'); });
    events.addEventListener('status', (e) => { problem.replaceChildren(); show(JSON.parse(e.data)); });
    events.addEventListener('problem', (e) => problem.replaceChildren(BF.errorBox(new Error(e.data))));
    events.addEventListener('end', () => { events.close(); live.textContent = 'final'; live.classList.remove('on'); });
    events.addEventListener('error', () => {
      if (events.readyState === EventSource.CLOSED) { live.textContent = 'disconnected'; live.classList.remove('on'); }
    });
    BF.cleanups.push(() => events.close());
    // An action's answer is shown at once; the stream follows with the same or newer state.
    BF.rolloutShown = show;
  };

  function rolloutBody(r) {
    const c = counts(r);
    const pct = c.total ? Math.round((100 * c.done) / c.total) : 100;
    const approval = r.approval;
    const rollback = r.rollback;
    return h('div', { id: 'rollout', 'data-state': r.state },
      h('p', { class: 'sub' }, h('span', { id: 'rollout-state' }, badge(r.state)), ' ',
        r.reason ? h('span', { id: 'rollout-reason' }, r.reason) : '',
        r.awaiting_promotion ? [' ', badge('awaiting promotion', 'warn')] : ''),
      h('p', {}, h('span', { class: 'progress' }, bar(pct)), ' ',
        h('span', { id: 'rollout-progress' }, c.done, ' of ', c.total, ' hosts done'), ' · ', r.failures, ' failed · wave ', r.current_wave + 1, ' of ', r.waves.length,
        ' · created ', BF.time(r.created_at), ' by ', r.created_by),
      approval ? h('p', {}, 'Approval required by ', approval.tenants.join(', '), ': ',
        approval.approved_by ? 'approved by ' + approval.approved_by + ' ' + BF.time(approval.approved_at) : 'not yet approved') : '',
      rollback ? h('p', {}, 'Rollback asked by ', rollback.requested_by, ' ', BF.time(rollback.requested_at), ': ',
        rollback.finished_at ? 'finished ' + BF.time(rollback.finished_at) : 'under way') : '',
      actionButtons(r),
      r.waves.map(waveSection),
      r.skipped.length ? [h('h2', {}, 'Skipped by the plan'),
        table(['Host', 'Tenant', 'Why'], r.skipped.map((x) => h('tr', { 'data-host': x.host_id },
          h('td', {}, link('host', [x.host_id], x.host_id)), h('td', {}, x.tenant), h('td', {}, x.detail || x.skip_reason || ''))))] : '');
  }

  // Through the CSSOM: the content security policy refuses style attributes.
  function bar(pct) {
    const el = h('span', { 'data-pct': pct });
    el.style.width = pct + '%';
    return el;
  }

  function actionButtons(r) {
    // A viewer gets no buttons at all; the controller refuses them anyway.
    if (!BF.canSteer()) return '';
    const buttons = ACTIONS.filter(([, , allowed]) => allowed(r)).map(([action, label, , text, tone]) =>
      h('button', {
        id: 'action-' + action, class: tone || '', 'data-action': action,
        onclick: async (e) => {
          const answer = await BF.confirm(label.replace('…', '') + ' rollout ' + r.id + '?', text, action === 'abort');
          if (!answer) return;
          e.target.disabled = true;
          try {
            const next = await BF.post('/api/rollouts/' + encodeURIComponent(r.id) + '/' + action, answer);
            if (BF.rolloutShown) BF.rolloutShown(next);
          } catch (err) {
            e.target.disabled = false;
            e.target.after(BF.errorBox(err));
          }
        },
      }, label));
    return buttons.length ? h('div', { class: 'actions', id: 'rollout-actions' }, buttons) : '';
  }

  function waveSection(w) {
    const name = w.index === 0 ? 'Wave 1 (canary)' : 'Wave ' + (w.index + 1);
    const rows = w.hosts.map((x) => h('tr', { 'data-host': x.host_id },
      h('td', {}, link('host', [x.host_id], x.host_id)), h('td', {}, x.tenant),
      h('td', { class: 'state' }, badge(x.state)), h('td', {}, x.current_step || '–'),
      h('td', {}, x.detail), h('td', {}, BF.time(x.started_at)), h('td', {}, BF.time(x.finished_at)),
      h('td', {}, x.rollback ? badge(x.rollback) : '–')));
    return h('section', { class: 'wave panel', 'data-wave': w.index },
      h('h3', {}, name, h('span', { class: 'muted' }, w.started_at ? 'started ' + BF.time(w.started_at) : 'not started',
        w.finished_at ? ' · finished ' + BF.time(w.finished_at) : '')),
      table(['Host', 'Tenant', 'State', 'Step', 'Detail', 'Started', 'Finished', 'Rollback'], rows, { class: 'wave-hosts' }));
  }

  // ---- Plan ----------------------------------------------------------------------------------

  const PLAN_FIELDS = [
    ['target', 'Target release (X.Y.Z)', '1.6.10'],
    ['tenants', 'Tenants (comma-separated)', 'acme, globex'],
    ['hosts', 'Hosts (comma-separated)', ''],
    ['labels', 'Labels (key=value, all must match)', 'env=prod'],
    ['waves', 'Waves (cumulative)', '1,10%,100%'],
    ['max_parallel', 'Hosts at once', '5'],
    ['max_failures', 'Failures tolerated', '0'],
    ['soak', 'Soak between waves', '10m'],
  ];

  BF.pages.plan = async function (view, route) {
    const params = route.params;
    const inputs = {};
    const fields = PLAN_FIELDS.map(([key, label, placeholder]) => {
      inputs[key] = h('input', { type: 'text', id: 'plan-' + key, name: key, placeholder, value: params.get(key) || '' });
      return h('label', { class: 'field' }, label, inputs[key]);
    });
    const all = h('input', { type: 'checkbox', id: 'plan-select_all', checked: params.get('select_all') === 'true' });
    const manual = h('input', { type: 'checkbox', id: 'plan-manual_promote', checked: params.get('manual_promote') === 'true' });
    const result = h('div', { id: 'plan-result' });
    const run = async () => {
      const form = { select_all: all.checked, manual_promote: manual.checked };
      for (const [key] of PLAN_FIELDS) form[key] = inputs[key].value.trim();
      result.replaceChildren(h('p', { class: 'muted' }, 'Planning…'));
      try {
        result.replaceChildren(planView(await BF.post('/api/plan', form)));
      } catch (err) {
        result.replaceChildren(BF.errorBox(err));
      }
      result.setAttribute('data-done', '1');
    };
    add(view, 
      h('h1', {}, 'Plan a rollout'),
      h('p', { class: 'sub' }, 'A dry run: what a rollout of this spec would do now. Nothing is started or stored.'),
      h('form', { class: 'panel', id: 'plan-form', onsubmit: (e) => { e.preventDefault(); run(); } },
        h('div', { class: 'form' }, fields),
        h('p', {}, h('label', { class: 'check' }, all, 'Every host of my scope (when no tenant, host or label is given)'),
          h('label', { class: 'check' }, manual, 'Each wave waits for a promotion')),
        h('button', { type: 'submit', id: 'plan-run' }, 'Plan (dry run)')),
      result);
    if (params.get('target')) run();
  };

  function planView(plan) {
    const waves = plan.waves.map((w) => h('section', { class: 'wave panel', 'data-wave': w.index },
      h('h3', {}, w.index === 0 ? 'Wave 1 (canary)' : 'Wave ' + (w.index + 1),
        h('span', { class: 'muted' }, w.hosts.length + (w.hosts.length === 1 ? ' host' : ' hosts'))),
      table(['Host', 'Tenant', 'From', 'Update', 'May start', 'Window', 'Config defaults that change'],
        w.hosts.map((x) => h('tr', { 'data-host': x.host_id },
          h('td', {}, link('host', [x.host_id], x.host_id)), h('td', {}, x.tenant), h('td', {}, x.from || 'unknown'),
          h('td', {}, badge(x.update)), h('td', {}, x.next_window ? BF.time(x.next_window) : 'any time'),
          h('td', { class: 'tag' }, x.window || '–'),
          h('td', {}, x.config_changes.length ? h('ul', { class: 'plain' }, x.config_changes.map((c) => h('li', {}, c))) : '–'))))));
    const skipped = plan.skipped.map((x) => h('tr', { 'data-host': x.host_id },
      h('td', {}, link('host', [x.host_id], x.host_id)), h('td', {}, x.tenant), h('td', {}, x.from || 'unknown'),
      h('td', { class: 'skip' }, x.reason || x.skip_reason)));
    const count = plan.waves.reduce((n, w) => n + w.hosts.length, 0);
    return h('div', {},
      h('h2', {}, 'To ', plan.target, ': ', count, ' hosts in ', plan.waves.length, ' waves, ', plan.skipped.length, ' skipped'),
      waves,
      skipped.length ? [h('h2', {}, 'Skipped'), table(['Host', 'Tenant', 'From', 'Why'], skipped, { id: 'plan-skipped' })] : '');
  }

  BF.start();
})();
