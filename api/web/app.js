// The radiologist's worklist page. Plain ES modules, no build step: the Go
// binary embeds this folder and serves it under /ui/ (api/ui.go).
//
// Data flow: the whole queue is read in one streamed request,
// /api/v1/worklist?format=ndjson (in the API's order: due time, then
// study UID; reload). Its X-Radtriage-Event-Id header is the stream's
// newest event ID, read before the list: the event stream
// (/api/v1/worklist/events?last_event_id=) opens from there as soon as the
// answer starts, in parallel with the rest of the list, and its events
// queue up until the list is complete, so nothing between the list and the
// stream is lost and nothing waits for the stream to open. Each event then
// patches one item, moving it to its place. The table is windowed: only
// the rows on screen (and a few either side) exist (see "rows" below).

import * as api from './api.js';
import { LiveStream } from './live.js';
import { Panel } from './panel.js';
import { setupAlerts } from './alerts.js';
import { cellTitle, dueMS, fillRow, newRow, setDue, tickRows } from './rows.js';
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
  view: [], // the items the filters show, in order
  rows: new Map(), // study UID -> <tr>, for the rendered window of the view
  rowH: 46, // px, as the CSS fixes it (measured on the first rows)
  rowHMeasured: false,
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
//
// The list is windowed: the table holds rows only for the studies on
// screen and a few above and below it (overscan), and the body's top and
// bottom padding stand for the others, at a fixed row height, so the
// scroll bar and the scroll position are those of the whole list. State
// is in the items (state.items, and state.view: those the filters show);
// renderWindow makes the rows match it, reusing the row of each study that
// stays in the window. 5,000 studies then cost 5,000 objects and about
// fifty rows, not 60,000 elements to build, style and lay out. The table
// says how many rows it stands for (aria-rowcount) and each row where it
// is (aria-rowindex), as the ARIA practices for a windowed table ask.

/** overscan is how many rows are rendered above and below the screen. */
const overscan = 12;

/** searchIn is the index where it belongs in the ordered list (binary search). */
function searchIn(list, it) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(list[mid], it) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** indexIn is the index of it (by study UID) in the ordered list, -1 when absent. */
function indexIn(list, it) {
  const i = searchIn(list, it);
  if (i < list.length && list[i].study_uid === it.study_uid) return i;
  return list.findIndex((x) => x.study_uid === it.study_uid);
}

/** viewIndex is the index of the study uid in state.view, -1 when not shown. */
function viewIndex(uid) {
  const it = state.byUID.get(uid);
  return it ? indexIn(state.view, it) : -1;
}

/** rebuildView recomputes state.view from state.items and the filters. */
function rebuildView() {
  const f = filters();
  state.view = state.items.filter((it) => matches(it, f));
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
  const shown = state.view.length;
  const total = state.items.length;
  el.shown.textContent = shown === total ? total + ' studies' : shown + ' of ' + total + ' studies';
  el.empty.hidden = shown !== 0 || state.loading;
}

/**
 * renderWindow makes the table's rows those of the studies of state.view
 * on screen, plus overscan rows either side: it keeps the row of a study
 * that stays (moving it only when its place changed, and keeping its
 * focus), builds the others, drops those that left, and sets the body's
 * padding to the height of the rows it stands for.
 */
function renderWindow(now = Date.now()) {
  const view = state.view;
  const n = view.length;
  const h = state.rowH;
  const top = el.tbody.getBoundingClientRect().top; // the first row's place (the padding is part of the box)
  let first = Math.max(0, Math.floor(-top / h) - overscan);
  let last = Math.min(n, Math.ceil((window.innerHeight - top) / h) + overscan);
  if (first >= last) {
    // Scrolled past the end (the list just shrank): the last screenful.
    last = n;
    first = Math.max(0, n - Math.ceil(window.innerHeight / h) - overscan);
  }
  const rows = new Map();
  const want = [];
  for (let i = first; i < last; i++) {
    const it = view[i];
    let tr = state.rows.get(it.study_uid);
    if (!tr) tr = newRow(it, now);
    else if (now >= tr._next) setDue(tr, it, now);
    const ri = String(i + 2); // the header row is 1
    if (tr._rowIndex !== ri) {
      tr._rowIndex = ri;
      tr.setAttribute('aria-rowindex', ri);
    }
    rows.set(it.study_uid, tr);
    want.push(tr);
  }
  const focused = document.activeElement;
  for (const [uid, tr] of state.rows) {
    if (rows.get(uid) === tr) continue;
    tr.remove();
    if (state.tabStop === tr) state.tabStop = null;
  }
  state.rows = rows;
  let cur = el.tbody.firstElementChild;
  for (const tr of want) {
    if (tr === cur) {
      cur = cur.nextElementSibling;
      continue;
    }
    el.tbody.insertBefore(tr, cur);
    if (tr === focused) tr.focus({ preventScroll: true }); // a move loses the focus
  }
  el.tbody.style.paddingTop = first * h + 'px';
  el.tbody.style.paddingBottom = (n - last) * h + 'px';
  const count = String(n + 1);
  if (el.table.getAttribute('aria-rowcount') !== count) el.table.setAttribute('aria-rowcount', count);
  if (!state.rowHMeasured && want.length) {
    // The CSS fixes the height; measure it once (zoom, fonts) and redo.
    state.rowHMeasured = true;
    const measured = want[0].getBoundingClientRect().height;
    if (measured > 0 && Math.abs(measured - h) > 0.1) {
      state.rowH = measured;
      renderWindow(now);
      return;
    }
  }
  applySelection(false);
}

let windowQueued = false;

/** queueWindow renders the window in the next frame (scrolling, resizing). */
function queueWindow() {
  if (windowQueued) return;
  windowQueued = true;
  requestAnimationFrame(() => {
    windowQueued = false;
    renderWindow();
  });
}

/** scrollToIndex scrolls the page just enough for row i of the view to be on screen, clear of the sticky header. */
function scrollToIndex(i) {
  const h = state.rowH;
  const rowTop = el.tbody.getBoundingClientRect().top + i * h; // in the viewport
  const head = el.table.tHead ? el.table.tHead.getBoundingClientRect().height : 0;
  if (rowTop < head) window.scrollBy(0, rowTop - head);
  else if (rowTop + h > window.innerHeight) window.scrollBy(0, rowTop + h - window.innerHeight);
}

/** renderAll shows the list anew under the current filters. */
function renderAll() {
  if (!state.rendered && state.loading) return; // the first load renders when it has a screenful
  rebuildView();
  renderWindow();
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

/**
 * dropFromView takes the study uid out of state.view; when it was the
 * selected one, the selection goes to the study that took its place (or
 * the one before, at the end), keeping the focus on the list.
 */
function dropFromView(uid) {
  const i = viewIndex(uid);
  if (i < 0) return;
  state.view.splice(i, 1);
  if (uid !== state.selected) return;
  const tr = state.rows.get(uid);
  const hadFocus = !!tr && document.activeElement === tr;
  state.selected = '';
  const next = state.view[Math.min(i, state.view.length - 1)];
  if (next) {
    renderWindow();
    select(next.study_uid, { focus: hadFocus, scroll: false, follow: false });
  }
}

/** upsert puts an item in place (list, view and window), flashing its row. */
function upsert(it, { highlight = true } = {}) {
  const uid = it.study_uid;
  const old = state.byUID.get(uid);
  if (old && old.updated_at && it.updated_at && Date.parse(it.updated_at) < Date.parse(old.updated_at)) return; // stale
  const shown = matches(it, filters());
  if (old) {
    if (shown) {
      const v = indexIn(state.view, old);
      if (v >= 0) state.view.splice(v, 1);
    } else {
      dropFromView(uid); // filtered out now: as if removed (the selection moves on)
    }
    const i = indexIn(state.items, old);
    if (i >= 0) state.items.splice(i, 1);
  }
  state.items.splice(searchIn(state.items, it), 0, it);
  state.byUID.set(uid, it);
  addModalityOption(it.modality);
  if (shown) {
    state.view.splice(searchIn(state.view, it), 0, it);
    const tr = state.rows.get(uid);
    if (tr) fillRow(tr, it, Date.now());
  }
  renderWindow();
  const tr = state.rows.get(uid);
  if (tr && highlight) flash(tr);
  if (panel && panel.study === uid) panel.update(it);
}

/** remove takes a study off the list (completed, or gone). */
function remove(uid) {
  const old = state.byUID.get(uid);
  if (!old) return;
  dropFromView(uid);
  const i = indexIn(state.items, old);
  if (i >= 0) state.items.splice(i, 1);
  state.byUID.delete(uid);
  const wasPanel = panel && panel.study === uid;
  renderWindow();
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
 * order (state.tabStop: the selected row when it is rendered, else the
 * first rendered row).
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

/**
 * select makes the study uid (one the filters show) the selected one; with
 * scroll, a study off screen is scrolled to and its row rendered first.
 */
function select(uid, { focus = true, scroll = true, follow = true } = {}) {
  const i = viewIndex(uid);
  if (i < 0) return;
  if (scroll && !state.rows.has(uid)) {
    scrollToIndex(i);
    renderWindow();
  }
  const prev = state.rows.get(state.selected);
  if (prev) markSelected(prev, false);
  state.selected = uid;
  applySelection(scroll);
  const tr = state.rows.get(uid);
  if (focus && tr) tr.focus({ preventScroll: !scroll });
  if (follow && panel && panel.isOpen) panel.show(state.byUID.get(uid));
}

function move(delta) {
  const n = state.view.length;
  if (!n) return;
  const cur = state.selected ? viewIndex(state.selected) : -1;
  const i = cur < 0 ? 0 : Math.max(0, Math.min(n - 1, cur + delta));
  select(state.view[i].study_uid);
}

function openPanel(uid, focus = true) {
  const it = state.byUID.get(uid || state.selected);
  if (!it) return;
  if (state.selected !== it.study_uid && viewIndex(it.study_uid) >= 0) select(it.study_uid, { focus: false, follow: false });
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
        window.scrollTo(0, 0); // the top of the page, filters and counts included
        if (state.view.length) select(state.view[0].study_uid);
      }
      break;
    case 'End':
      if (!onControl) {
        e.preventDefault();
        if (state.view.length) select(state.view[state.view.length - 1].study_uid);
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
 * reload reads the whole list again, streamed in one request
 * (api.fetchWorklist). The event stream opens from the list's event ID as
 * soon as the answer starts. The first time, the first screenful of rows
 * is shown as soon as its items are in (mark 'worklist-first-screen');
 * the rest of the list, its counts and the full scroll height follow when
 * the list is complete (mark 'worklist-rendered'). Later loads (after a reconnection,
 * or a "rebuilt" or "reset" event) keep the current list on screen until
 * the new one is complete. Events that arrive meanwhile are applied after
 * it.
 */
async function reload() {
  if (state.loading) {
    state.reloadAgain = true;
    return;
  }
  state.loading = true;
  state.pending = [];
  const firstLoad = !state.rendered;
  const screenful = Math.ceil(window.innerHeight / state.rowH) + overscan;
  let early = firstLoad ? [] : null; // the first items, until a screenful is shown
  if (firstLoad) performance.mark('worklist-fetch-start');
  const onBatch = (items, page, first) => {
    if (first && !live.started) live.start(page.event_id);
    if (!early) return;
    for (const it of items) early.push(it);
    if (early.length >= screenful) {
      // The top of the list, in order: show it while the rest arrives.
      state.items = early;
      state.byUID = new Map(early.map((it) => [it.study_uid, it]));
      rebuildView();
      renderWindow();
      el.loading.hidden = true;
      early = null;
      performance.mark('worklist-first-screen');
    }
  };
  try {
    const items = await api.fetchWorklist(onBatch);
    state.byUID = new Map();
    for (const it of items) {
      state.byUID.set(it.study_uid, it);
      addModalityOption(it.modality);
    }
    state.items = state.byUID.size === items.length ? items : [...state.byUID.values()];
    // The API's order already (linear), unless an item changed while the
    // list was read.
    state.items.sort(compare);
    if (state.selected && !state.byUID.has(state.selected)) state.selected = '';
    state.loading = false;
    rebuildView();
    const now = Date.now();
    for (const [uid, tr] of state.rows) {
      // Rows that stay show the item as read now.
      const it = state.byUID.get(uid);
      if (it) fillRow(tr, it, now);
    }
    renderWindow(now);
    updateCounts();
    updateShown();
    el.loading.hidden = true;
    el.error.hidden = true;
    if (!state.rendered) {
      state.rendered = true;
      if (early) performance.mark('worklist-first-screen'); // the whole list fit in less than a screenful
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
  window.addEventListener('scroll', queueWindow, { passive: true });
  window.addEventListener('resize', queueWindow);
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
