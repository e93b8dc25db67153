// The radiologist's worklist page. Plain ES modules, no build step: the Go
// binary embeds this folder and serves it under /ui/ (api/ui.go).
//
// Data flow: the whole queue is read page by page from /api/v1/worklist
// (in the API's order: due time, then study UID), each page's rows built
// while the next page is fetched (reload); the event stream
// (/api/v1/worklist/events) then patches one row per event, moving that
// row to its place. The list's first page carries the stream's newest
// event ID (event_id), read before the page: the stream opens from there
// (?last_event_id=) as soon as that page is in, in parallel with the rest
// of the list, and its events queue up until the list is complete, so
// nothing between the list and the stream is lost and nothing waits for
// the stream to open.

import * as api from './api.js';
import { LiveStream } from './live.js';
import { Panel } from './panel.js';
import { setupAlerts } from './alerts.js';
import { cellTitle, dueMS, fillRow, newRow, tickRows } from './rows.js';
import { personName, percent, staticReason, localInputValue } from './util.js';

const userKey = 'radtriage.user';
const movedMS = 1500;

const $ = (id) => document.getElementById(id);

const el = {
  user: $('user-name'),
  table: $('worklist'),
  tbody: $('worklist').tBodies[0],
  empty: $('empty'),
  loading: $('loading'),
  shown: $('shown-count'),
  modality: $('filter-modality'),
  tier: $('filter-tier'),
  status: $('filter-status'),
  mine: $('filter-mine'),
  counts: { critical: $('count-critical'), urgent: $('count-urgent'), routine: $('count-routine') },
  offline: $('banner-offline'),
  error: $('banner-error'),
  help: $('help-overlay'),
  override: $('override-dialog'),
  toast: $('toast'),
};

const state = {
  config: { viewer_url: '', demonstration: true, models: [] },
  items: [], // the queue in API order
  byUID: new Map(), // study UID -> item
  rows: new Map(), // study UID -> <tr>, for rendered (filter-matching) items
  selected: '',
  tabStop: null, // the row in the Tab order (tabindex 0)
  loading: false,
  pending: [], // events received while loading
  rendered: false, // the first full render happened
  reloadAgain: false,
};

let panel = null;
let live = null;
let critical = () => {};

// ---- ordering ----

/** compare orders items as the API does: due time, then study UID bytewise. */
function compare(a, b) {
  const d = dueMS(a) - dueMS(b);
  if (d !== 0) return d;
  return a.study_uid < b.study_uid ? -1 : a.study_uid > b.study_uid ? 1 : 0;
}

/** searchIndex is the index where it belongs in state.items (binary search). */
function searchIndex(it) {
  let lo = 0;
  let hi = state.items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(state.items[mid], it) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function indexOfItem(it) {
  const i = searchIndex(it);
  if (i < state.items.length && state.items[i].study_uid === it.study_uid) return i;
  return state.items.findIndex((x) => x.study_uid === it.study_uid);
}

// ---- filters ----

function currentUser() {
  return el.user.value.trim();
}

function filters() {
  return {
    modality: el.modality.value,
    tier: el.tier.value,
    status: el.status.value,
    mine: el.mine.checked,
    user: currentUser(),
  };
}

/** filterKey tells whether two filters() select the same rows. */
function filterKey(f) {
  return [f.modality, f.tier, f.status, f.mine ? f.user : '\u0000'].join('\u0001');
}

function matches(it, f) {
  if (f.modality && (it.modality || '').toUpperCase() !== f.modality) return false;
  if (f.tier && it.tier !== f.tier) return false;
  if (f.status && it.status !== f.status) return false;
  if (f.mine && !(it.status === 'claimed' && it.claimed_by === f.user)) return false;
  return true;
}

/** modalities are the values of #filter-modality's options (a Set: checked once per item). */
const modalities = new Set();

function addModalityOption(m) {
  if (!m || modalities.has(m)) return;
  m = m.toUpperCase();
  if (modalities.size === 0) for (const o of el.modality.options) modalities.add(o.value);
  if (modalities.has(m)) return;
  modalities.add(m);
  const o = document.createElement('option');
  o.value = m;
  o.textContent = m;
  el.modality.append(o);
}

// ---- rows ----

/** rowsFor builds the rows of items that match f, in one fragment, registering them in state.rows. */
function rowsFor(items, f, now) {
  const frag = document.createDocumentFragment();
  for (const it of items) {
    if (!matches(it, f)) continue;
    const tr = newRow(it, now);
    state.rows.set(it.study_uid, tr);
    frag.append(tr);
  }
  return frag;
}

function updateCounts() {
  const n = { critical: 0, urgent: 0, routine: 0 };
  for (const it of state.items) if (n[it.tier] !== undefined) n[it.tier]++;
  for (const t of Object.keys(n)) {
    const s = String(n[t]);
    if (el.counts[t].textContent !== s) el.counts[t].textContent = s;
  }
}

function updateShown() {
  const shown = state.rows.size;
  const total = state.items.length;
  el.shown.textContent = shown === total ? total + ' studies' : shown + ' of ' + total + ' studies';
  el.empty.hidden = shown !== 0 || state.loading;
}

/** renderAll rebuilds the table body in one pass (one fragment of new rows). */
function renderAll() {
  if (!state.rendered && state.loading) return; // the first load renders as it goes
  state.rows.clear();
  state.tabStop = null;
  el.tbody.replaceChildren(rowsFor(state.items, filters(), Date.now()));
  applySelection(false);
  updateCounts();
  updateShown();
}

/**
 * flash highlights a row that moved or changed for movedMS. Adding the
 * class starts the animation; when the row already has it (it changed
 * again within the window), switching the animation to its twin
 * (class "again") restarts it, with no layout read to force a restart.
 */
function flash(tr) {
  if (tr.classList.contains('moved')) tr.classList.toggle('again');
  else tr.classList.add('moved');
  clearTimeout(tr._movedTimer);
  tr._movedTimer = setTimeout(() => tr.classList.remove('moved', 'again'), movedMS);
}

/** upsert puts an item in place (list and row), flashing its row. */
function upsert(it, { highlight = true } = {}) {
  const uid = it.study_uid;
  const old = state.byUID.get(uid);
  if (old) {
    if (old.updated_at && it.updated_at && Date.parse(it.updated_at) < Date.parse(old.updated_at)) return; // stale
    const i = indexOfItem(old);
    if (i >= 0) state.items.splice(i, 1);
  }
  const idx = searchIndex(it);
  state.items.splice(idx, 0, it);
  state.byUID.set(uid, it);
  addModalityOption(it.modality);

  const oldRow = state.rows.get(uid);
  if (matches(it, filters())) {
    // The row after which it belongs: the next rendered item's.
    let next = null;
    for (let j = idx + 1; j < state.items.length; j++) {
      const r = state.rows.get(state.items[j].study_uid);
      if (r && r !== oldRow) {
        next = r;
        break;
      }
    }
    let tr = oldRow;
    if (tr) {
      fillRow(tr, it, Date.now());
      // Move the row itself, only when its place changed.
      if (tr.nextElementSibling !== next) {
        const hadFocus = document.activeElement === tr;
        el.tbody.insertBefore(tr, next);
        if (hadFocus) tr.focus({ preventScroll: true });
      }
    } else {
      tr = newRow(it, Date.now());
      el.tbody.insertBefore(tr, next);
      state.rows.set(uid, tr);
    }
    if (highlight) flash(tr);
  } else if (oldRow) {
    removeRow(uid);
  }
  if (!state.selected) applySelection(false);
  if (panel && panel.study === uid) panel.update(it);
}

function removeRow(uid) {
  const tr = state.rows.get(uid);
  if (!tr) return;
  let next = '';
  if (uid === state.selected) {
    const sib = tr.nextElementSibling || tr.previousElementSibling;
    next = sib ? sib.dataset.study : '';
  }
  const hadFocus = document.activeElement === tr;
  tr.remove();
  state.rows.delete(uid);
  if (state.tabStop === tr) state.tabStop = null;
  if (uid === state.selected) {
    state.selected = '';
    if (next) select(next, { focus: hadFocus, scroll: false, follow: false });
  }
  applySelection(false);
}

/** remove takes a study off the list (completed, or gone). */
function remove(uid) {
  const old = state.byUID.get(uid);
  if (!old) return;
  const i = indexOfItem(old);
  if (i >= 0) state.items.splice(i, 1);
  state.byUID.delete(uid);
  const wasPanel = panel && panel.study === uid;
  removeRow(uid);
  if (wasPanel && panel.study === uid) panel.close();
}

// ---- selection ----

function markSelected(tr, on) {
  tr.classList.toggle('selected', on);
  if (on) {
    tr.setAttribute('aria-current', 'true');
    tr.tabIndex = 0;
  } else {
    tr.removeAttribute('aria-current');
    tr.tabIndex = -1;
  }
}

/**
 * applySelection marks the selected row, and keeps one row in the Tab
 * order (state.tabStop: the selected row, else the first).
 */
function applySelection(scroll) {
  const tr = state.selected ? state.rows.get(state.selected) : null;
  const stop = tr || el.tbody.firstElementChild;
  if (state.tabStop && state.tabStop !== stop) markSelected(state.tabStop, false);
  state.tabStop = stop;
  if (tr) {
    markSelected(tr, true);
    if (scroll) tr.scrollIntoView({ block: 'nearest' });
  } else if (stop) {
    markSelected(stop, false);
    stop.tabIndex = 0; // where Tab enters the list
  }
}

function select(uid, { focus = true, scroll = true, follow = true } = {}) {
  if (!state.rows.has(uid)) return;
  const prev = state.rows.get(state.selected);
  if (prev) markSelected(prev, false);
  state.selected = uid;
  applySelection(scroll);
  const tr = state.rows.get(uid);
  if (focus) tr.focus({ preventScroll: !scroll });
  if (follow && panel && panel.isOpen) panel.show(state.byUID.get(uid));
}

function move(delta) {
  const rows = el.tbody.rows;
  if (!rows.length) return;
  const cur = state.rows.get(state.selected);
  let i = cur ? cur.sectionRowIndex + delta : 0;
  i = Math.max(0, Math.min(rows.length - 1, i));
  select(rows[i].dataset.study);
}

function openPanel(uid, focus = true) {
  const it = state.byUID.get(uid || state.selected);
  if (!it) return;
  if (state.rows.has(it.study_uid) && state.selected !== it.study_uid) select(it.study_uid, { focus: false, follow: false });
  panel.show(it, { focus });
}

function closePanel() {
  panel.close();
  const tr = state.rows.get(state.selected);
  if (tr) tr.focus();
}

// ---- actions ----

let toastTimer = 0;

function toast(text, isError = false) {
  el.toast.textContent = text;
  el.toast.classList.toggle('error', isError);
  el.toast.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.toast.classList.remove('show'), isError ? 8000 : 3000);
}

function needUser() {
  const user = currentUser();
  if (!user) {
    toast('Enter your name in "Reading as" first: every change records who made it.', true);
    el.user.focus();
  }
  return user;
}

function targetStudy(uid) {
  return uid || (panel.isOpen ? panel.study : state.selected);
}

async function act(action, uid) {
  const study = targetStudy(uid);
  if (!study) {
    toast('Select a study first (j or k, or click a row).', true);
    return;
  }
  if (action === 'override') {
    openOverride(study);
    return;
  }
  if (action === 'open') {
    openPanel(study);
    return;
  }
  const user = needUser();
  if (!user) return;
  const calls = { claim: api.claim, release: api.release, complete: api.complete };
  const done = { claim: 'Claimed', release: 'Released', complete: 'Completed' };
  const call = calls[action];
  if (!call) return;
  try {
    const it = await call(study, user);
    applyItem(it);
    toast(done[action] + ': ' + (personName(it.patient_name) || it.accession_number || study));
  } catch (err) {
    toast(err.message, true);
  }
}

/** applyItem applies an item the API answered or an event carried. */
function applyItem(it, opts) {
  if (!it || !it.study_uid) return;
  if (it.status === 'done') remove(it.study_uid);
  else upsert(it, opts);
  updateCounts();
  updateShown();
}

// ---- override dialog ----

let overrideStudy = '';

function openOverride(study) {
  const it = state.byUID.get(study);
  if (!it) return;
  overrideStudy = study;
  $('override-study').textContent = [personName(it.patient_name), it.accession_number, it.description].filter(Boolean).join(' · ');
  $('override-tier').value = it.override && it.override.tier ? it.override.tier : '';
  $('override-due').value = it.override && it.override.due ? localInputValue(new Date(it.override.due)) : '';
  $('override-reason').value = '';
  $('override-error').hidden = true;
  $('override-clear').disabled = !it.override;
  el.override.showModal();
  $('override-tier').focus();
}

function overrideError(text) {
  const e = $('override-error');
  e.textContent = text;
  e.hidden = false;
}

async function submitOverride(clear) {
  const user = currentUser();
  if (!user) {
    overrideError('Enter your name in "Reading as" first.');
    return;
  }
  try {
    let it;
    if (clear) {
      it = await api.clearPriority(overrideStudy, user);
    } else {
      const tier = $('override-tier').value;
      const dueText = $('override-due').value;
      const reason = $('override-reason').value.trim();
      if (!tier && !dueText) return overrideError('Choose a tier, a due time, or both.');
      if (!reason) return overrideError('Say why: the reason is required and recorded.');
      let due = '';
      if (dueText) {
        const d = new Date(dueText);
        if (isNaN(d.getTime())) return overrideError('The due time is not a valid date and time.');
        due = d.toISOString();
      }
      it = await api.setPriority(overrideStudy, user, { tier, due, reason });
    }
    el.override.close();
    applyItem(it);
    toast(clear ? 'Override cleared' : 'Priority set');
    const tr = state.rows.get(overrideStudy);
    if (tr) select(overrideStudy);
  } catch (err) {
    overrideError(err.message);
  }
}

// ---- keyboard ----

function typing(t) {
  if (!t || !t.tagName) return false;
  const tag = t.tagName;
  return tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || t.isContentEditable;
}

function onKey(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (el.help.open || el.override.open) return; // the dialog has the keyboard (Escape closes it)
  if (e.key === 'Escape') {
    if (panel.isOpen) {
      e.preventDefault();
      closePanel();
    } else if (typing(e.target)) {
      e.target.blur();
    }
    return;
  }
  if (typing(e.target)) return;
  const onControl = e.target && (e.target.tagName === 'BUTTON' || e.target.tagName === 'A' || e.target.tagName === 'SUMMARY');
  switch (e.key) {
    case 'j':
    case 'ArrowDown':
      e.preventDefault();
      move(1);
      break;
    case 'k':
    case 'ArrowUp':
      e.preventDefault();
      move(-1);
      break;
    case 'Home':
      if (!onControl) {
        e.preventDefault();
        if (el.tbody.rows.length) select(el.tbody.rows[0].dataset.study);
      }
      break;
    case 'End':
      if (!onControl) {
        e.preventDefault();
        if (el.tbody.rows.length) select(el.tbody.rows[el.tbody.rows.length - 1].dataset.study);
      }
      break;
    case 'Enter':
    case ' ':
      if (onControl || (e.key === ' ' && !(e.target && e.target.tagName === 'TR'))) return;
      e.preventDefault();
      if (state.selected) openPanel(state.selected);
      break;
    case 'o':
      e.preventDefault();
      if (state.selected) openPanel(state.selected);
      break;
    case 'c':
      e.preventDefault();
      act('claim');
      break;
    case 'r':
      e.preventDefault();
      act('release');
      break;
    case 'd':
      e.preventDefault();
      act('complete');
      break;
    case 'p':
      e.preventDefault();
      act('override');
      break;
    case '?':
      e.preventDefault();
      showHelp();
      break;
    default:
  }
}

let helpReturn = null;

function showHelp() {
  helpReturn = document.activeElement;
  el.help.showModal();
  $('help-close').focus();
}

// ---- loading and live events ----

/**
 * reload reads the whole list again. The first time it shows the top of
 * the first page (a screenful) as soon as it arrives, opens the event
 * stream from that page's event_id, builds the other rows as their pages
 * arrive into one fragment off the document, adds that fragment once the
 * list is complete, and marks 'worklist-rendered'. Off the document,
 * building rows costs no style or layout, so the browser does that work
 * once, after the last page, instead of in the frames between pages
 * (which then only paint the first screenful). Later loads (after a
 * reconnection, or a "rebuilt" or "reset" event) keep the current rows
 * until the new list is complete. Events that arrive meanwhile are
 * applied after it.
 */
async function reload() {
  if (state.loading) {
    state.reloadAgain = true;
    return;
  }
  state.loading = true;
  state.pending = [];
  const progressive = !state.rendered;
  const f = filters();
  let dups = false;
  let rest = null; // the rows after the first page, first load only
  let onPage = (items, page, first) => {
    if (first && !live.started) live.start(page.event_id);
  };
  if (progressive) {
    performance.mark('worklist-fetch-start');
    el.tbody.replaceChildren();
    state.rows.clear();
    state.tabStop = null;
    const seen = new Set();
    const now = Date.now();
    rest = document.createDocumentFragment();
    onPage = (items, page, first) => {
      for (const it of items) {
        if (seen.has(it.study_uid)) {
          // Moved between two pages: the later copy wins.
          dups = true;
          const r = state.rows.get(it.study_uid);
          if (r) r.remove();
          state.rows.delete(it.study_uid);
        }
        seen.add(it.study_uid);
      }
      if (first) {
        // A screenful goes on the page at once; the rest waits in rest.
        const n = Math.ceil(window.innerHeight / 20);
        el.tbody.append(rowsFor(items.slice(0, n), f, now));
        rest.append(rowsFor(items.slice(n), f, now));
        el.loading.hidden = true;
        if (!live.started) live.start(page.event_id);
      } else {
        rest.append(rowsFor(items, f, now));
      }
    };
  }
  try {
    const items = await api.fetchWorklist(onPage);
    if (rest) el.tbody.append(rest);
    state.byUID = new Map();
    for (const it of items) {
      state.byUID.set(it.study_uid, it);
      addModalityOption(it.modality);
    }
    state.items = state.byUID.size === items.length ? items : [...state.byUID.values()];
    state.items.sort(compare); // the API's order already: linear
    if (state.selected && !state.byUID.has(state.selected)) state.selected = '';
    state.loading = false;
    if (!progressive || dups || filterKey(filters()) !== filterKey(f)) {
      renderAll();
    } else {
      applySelection(false);
      updateCounts();
      updateShown();
    }
    el.loading.hidden = true;
    el.error.hidden = true;
    if (!state.rendered) {
      state.rendered = true;
      performance.mark('worklist-rendered');
    }
    if (panel.isOpen) {
      const it = state.byUID.get(panel.study);
      if (it) panel.update(it);
      else panel.close();
    }
    const queued = state.pending;
    state.pending = [];
    for (const ev of queued) applyEvent(ev);
  } catch (err) {
    state.loading = false;
    el.error.textContent = 'Could not load the worklist: ' + err.message + '. Retrying…';
    el.error.hidden = false;
    setTimeout(reload, 3000);
    return;
  }
  if (state.reloadAgain) {
    state.reloadAgain = false;
    reload();
    return;
  }
  if (live.state === 'open') el.offline.hidden = true;
}

function criticalText(it) {
  const f = it.finding ? (it.finding.name || it.finding.code) + ' ' + percent(it.finding.probability) : staticReason(it.reason);
  return [personName(it.patient_name), it.modality, it.description, f].filter(Boolean).join(' · ');
}

function applyEvent(ev) {
  const { id, type, data } = ev;
  if (type === 'rebuilt' || type === 'reset') {
    reload();
    return;
  }
  if (state.loading) {
    state.pending.push(ev);
    return;
  }
  const item = data && data.item;
  if (item && item.study_uid) {
    const before = state.byUID.get(item.study_uid);
    applyItem(item);
    if (item.status !== 'done' && item.tier === 'critical' && (!before || before.tier !== 'critical')) {
      const text = criticalText(item);
      toast('Critical study: ' + text);
      critical(item, text);
    }
  } else if (data && data.study_uid) {
    api.fetchItem(data.study_uid).then((it) => {
      if (it) applyItem(it);
      else remove(data.study_uid);
    }).catch(() => {});
  }
  if (id) performance.mark('sse-applied:' + id);
}

function onLiveState(s, reconnected) {
  if (s === 'offline') {
    el.offline.hidden = false;
  } else if (s === 'open') {
    if (reconnected) {
      // Resumed with Last-Event-ID; reading the list once more makes sure
      // nothing was missed, then the banner goes.
      reload();
    } else if (!state.loading) {
      el.offline.hidden = true;
    }
  }
}

// ---- ticking countdowns ----

/** tick refreshes the countdowns whose text changes (rows.js keeps when). */
function tick() {
  if (document.hidden) return;
  const now = Date.now();
  tickRows(state.rows, state.byUID, now);
  panel.tick(now);
}

// ---- start ----

function wire() {
  el.user.addEventListener('input', () => {
    localStorage.setItem(userKey, el.user.value.trim());
    if (el.mine.checked) renderAll();
  });
  for (const f of [el.modality, el.tier, el.status, el.mine]) f.addEventListener('change', renderAll);
  $('filters').addEventListener('submit', (e) => e.preventDefault());

  el.tbody.addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-study]');
    if (!tr) return;
    select(tr.dataset.study, { focus: true, scroll: false, follow: false });
    openPanel(tr.dataset.study, false);
  });
  // The due and received times in full, as tooltips, once the pointer is on them.
  el.tbody.addEventListener('pointerover', (e) => {
    const td = e.target.closest('td.c-due, td.c-recv');
    if (td) cellTitle(td, state.byUID.get(td.parentElement.dataset.study));
  });
  el.tbody.addEventListener('focusin', (e) => {
    const tr = e.target.closest('tr[data-study]');
    if (tr && tr.dataset.study !== state.selected) select(tr.dataset.study, { focus: false, scroll: false });
  });
  document.addEventListener('keydown', onKey);

  $('help-button').addEventListener('click', showHelp);
  $('help-close').addEventListener('click', () => el.help.close());
  el.help.addEventListener('close', () => {
    if (helpReturn && helpReturn.focus) helpReturn.focus();
  });
  el.help.addEventListener('click', (e) => {
    if (e.target === el.help) el.help.close(); // a click on the backdrop
  });

  $('override-form').addEventListener('submit', (e) => {
    e.preventDefault();
    submitOverride(false);
  });
  $('override-clear').addEventListener('click', () => submitOverride(true));
  $('override-cancel').addEventListener('click', () => el.override.close());
  el.override.addEventListener('close', () => {
    const tr = panel.isOpen ? null : state.rows.get(state.selected);
    if (tr) tr.focus();
  });

  for (const b of document.querySelectorAll('[data-close="panel"]')) b.addEventListener('click', closePanel);
}

async function main() {
  const defaults = { viewer_url: '', demonstration: true, models: [] };
  el.user.value = localStorage.getItem(userKey) || '';
  live = new LiveStream({ onEvent: (ev) => applyEvent(ev), onState: onLiveState });
  // The list first: its first page says where the stream starts (reload
  // opens it then), so neither waits for the other.
  const loaded = reload();
  panel = new Panel({ config: { viewer_url: '', models: [] }, onAction: (a, uid) => act(a, uid) });
  critical = setupAlerts({
    soundToggle: $('sound-toggle'),
    notifyButton: $('notify-button'),
    onOpen: (uid) => openPanel(uid),
  });
  wire();
  api.fetchConfig().catch(() => defaults).then((config) => {
    // Without it the page still works: no viewer link, the cautious note.
    state.config = config || defaults;
    document.body.classList.toggle('demonstration', !!state.config.demonstration);
    panel.setConfig(state.config);
  });
  await loaded;
  setInterval(tick, 1000);
}

main();
