// The worklist's table rows. A row is a clone of a prototype <tr> whose
// text nodes get the study's text (Text.data: never parsed as HTML), so
// that 5,000 rows cost a clone and a few writes each, with no HTML string
// to build, escape and parse. fillRow also updates a row in place when its
// item changes, so an event touches one row and nothing else.
//
// A row keeps what its countdown shows and when that text next changes
// (tr._due, tr._next), so that the once-a-second tick rewrites only the
// cells whose text changes (those due or overdue within the hour every
// second, the others once a minute or once an hour).

import { tierLabel, personName, percent, millilitres, countdown, nextChange, staticReason } from './util.js';

// The prototype row. Every text it shows is a text node already there,
// which the row's fill rewrites (Text.data): a clone and one write per
// field. The markup is lean (5,000 rows: every node counts); the full
// due and received times are tooltips set on hover (cellTitle).
const proto = (() => {
  const text = () => document.createTextNode('');
  const el = (tag, cls, ...kids) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    e.append(...kids);
    return e;
  };
  const tr = el('tr', '',
    el('td', 'c-due due', text()),
    el('td', 'c-tier', el('span', 'badge', text())),
    el('td', 'c-finding', el('span', '', text()), text(), el('span', 'why', text())),
    el('td', 'c-mod', text()),
    el('td', 'c-desc', text()),
    el('td', 'c-acc', text()),
    el('td', 'c-patient', text(), el('span', 'pid', text())),
    el('td', 'c-recv', text()),
    el('td', 'c-status', text()),
    el('td', 'c-ai', text()));
  tr.tabIndex = -1;
  tr.setAttribute('data-claimed-by', '');
  return tr;
})();

/** Cell indexes, in column order. */
const DUE = 0;
const TIER = 1;
const FINDING = 2;
const MOD = 3;
const DESC = 4;
const ACC = 5;
const PATIENT = 6;
const RECV = 7;
const STATUS = 8;
const AI = 9;

/** dueMS is an item's due time in ms since the epoch (parsed once). */
export function dueMS(it) {
  if (it._due === undefined) it._due = Date.parse(it.due) || 0;
  return it._due;
}

function pad2(n) {
  return n < 10 ? '0' + n : String(n);
}

// Today in local time, for received times: those of today (the common
// case) are formatted by arithmetic, without a Date each.
let today = { start: 0, end: 0, even: false };

function dayOf(now) {
  if (now < today.start || now >= today.end) {
    const d = new Date(now);
    d.setHours(0, 0, 0, 0);
    const start = d.getTime();
    d.setDate(d.getDate() + 1);
    const end = d.getTime();
    // even: no change of UTC offset (daylight saving) within the day.
    today = { start, end, even: end - start === 86400e3 };
  }
  return today;
}

/** receivedText is a received time as local "HH:MM", with the date when not today. */
function receivedText(iso, now) {
  const ms = Date.parse(iso);
  if (!isFinite(ms)) return '';
  const day = dayOf(now);
  if (day.even && ms >= day.start && ms < day.end) {
    const min = Math.floor((ms - day.start) / 60e3);
    return pad2(Math.floor(min / 60)) + ':' + pad2(min % 60);
  }
  const d = new Date(ms);
  const hm = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  if (ms >= day.start && ms < day.end) return hm;
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + hm;
}

/** fullTime formats ms as local "YYYY-MM-DD HH:MM:SS". */
function fullTime(ms) {
  const d = new Date(ms);
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
    pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
}

/** setDue shows the countdown of the row of it at now, writing only what changed. */
export function setDue(tr, it, now) {
  const left = dueMS(it) - now;
  tr._next = now + nextChange(left);
  const text = countdown(left);
  if (tr._due === text) return;
  tr._due = text;
  const td = tr.firstChild;
  td.firstChild.data = text;
  const over = left < 0;
  if (tr._over !== over) {
    tr._over = over;
    td.classList.toggle('overdue', over);
    tr.classList.toggle('overdue', over);
  }
}

/** tickRows refreshes the countdowns whose text is due to change (rows: uid -> tr; items: uid -> item). */
export function tickRows(rows, items, now) {
  for (const [uid, tr] of rows) {
    if (now < tr._next) continue;
    const it = items.get(uid);
    if (it) setDue(tr, it, now);
  }
}

// Prototypes by kind (tier, status, AI state, no finding, overdue): what a
// kind fixes (the class and data attributes, the badge, the status and AI
// cells, the overdue mark) is in the prototype, so a new row only gets
// what is its own.
const kinds = new Map();

function noFindingText(it) {
  return it.ai === 'done' ? 'No finding' : it.ai === 'failed' ? 'AI failed' : 'AI pending';
}

/** kindOf is the prototype of the kind of it, overdue or not. */
function kindOf(it, over) {
  const key = it.tier + '\u0000' + it.status + '\u0000' + it.ai + '\u0000' + (it.finding ? '' : noFindingText(it)) + (over ? '\u0000!' : '');
  let k = kinds.get(key);
  if (!k) {
    k = proto.cloneNode(true);
    setKind(k, it);
    if (over) {
      k.classList.add('overdue');
      k.firstChild.classList.add('overdue');
    }
    kinds.set(key, k);
  }
  return k;
}

/** setKind writes what the kind of it fixes into tr (the overdue mark aside: setDue). */
function setKind(tr, it) {
  const tier = String(it.tier || '');
  const status = String(it.status || '');
  const ai = String(it.ai || 'pending');
  tr.setAttribute('data-tier', tier);
  tr.setAttribute('data-status', status);
  tr.setAttribute('data-ai', ai);
  if (tr._tier !== tier) {
    if (tr._tier !== undefined) tr.classList.remove('tier-' + tr._tier);
    tr.classList.add('tier-' + tier);
    tr._tier = tier;
  }
  const c = tr.children;
  const badge = c[TIER].firstChild;
  badge.className = 'badge tier-' + tier;
  badge.firstChild.data = tierLabel(it.tier);
  const name = c[FINDING].firstChild;
  if (it.finding) {
    name.className = 'finding-name';
  } else {
    name.className = 'muted';
    name.firstChild.data = noFindingText(it);
    name.nextSibling.data = '';
  }
  c[STATUS].firstChild.data = status === 'claimed' ? 'Claimed ' : status === 'open' ? 'Open' : status;
  const ac = c[AI];
  ac.className = 'c-ai ai-' + ai;
  ac.firstChild.data = ai;
}

/** newRow is a row for it. */
export function newRow(it, now) {
  const left = dueMS(it) - now;
  const over = left < 0;
  const tr = kindOf(it, over).cloneNode(true);
  tr._tier = String(it.tier || '');
  tr._over = over;
  tr._next = now + nextChange(left);
  tr._due = countdown(left);
  tr.firstChild.firstChild.data = tr._due;
  setData(tr, it, now);
  return tr;
}

/** fillRow writes it into the row tr, which shows an older state of the same study. */
export function fillRow(tr, it, now) {
  setKind(tr, it);
  const c = tr.children;
  c[DUE].removeAttribute('title'); // set again on hover (cellTitle): the due time may have changed
  const tc = c[TIER];
  while (tc.lastChild !== tc.firstChild) tc.lastChild.remove(); // the override mark
  const sc = c[STATUS];
  while (sc.lastChild !== sc.firstChild) sc.lastChild.remove(); // the claim holder
  if (!it.ai_error) c[AI].removeAttribute('title');
  tr.setAttribute('data-claimed-by', '');
  tr._due = undefined;
  setDue(tr, it, now);
  setData(tr, it, now);
}

/** setData writes what is the study's own into tr, a row of its kind (kindOf) with its countdown. */
function setData(tr, it, now) {
  tr.setAttribute('data-study', it.study_uid);
  const c = tr.children;
  if (it.override) {
    const m = document.createElement('span');
    m.className = 'override-mark';
    m.title = 'Manual priority by ' + (it.override.by || '') + ': ' + (it.override.reason || '');
    m.textContent = 'manual';
    c[TIER].append(' ', m);
  }
  const fc = c[FINDING];
  const f = it.finding;
  if (f) {
    const name = fc.firstChild;
    name.firstChild.data = f.name || f.code || '';
    const p = percent(f.probability);
    const v = millilitres(f.volume_ml);
    name.nextSibling.data = p && v ? ' ' + p + ' ' + v : p || v ? ' ' + (p || v) : '';
  }
  fc.lastChild.firstChild.data = staticReason(it.reason);
  c[MOD].firstChild.data = it.body_part ? (it.modality || '') + ' ' + it.body_part : it.modality || '';
  c[DESC].firstChild.data = it.description || '';
  c[ACC].firstChild.data = it.accession_number || '';
  const pc = c[PATIENT];
  pc.firstChild.data = personName(it.patient_name) + ' ';
  pc.lastChild.firstChild.data = it.patient_id || '';
  c[RECV].firstChild.data = receivedText(it.received, now);
  if (it.status === 'claimed' && it.claimed_by) {
    const holder = String(it.claimed_by);
    tr.setAttribute('data-claimed-by', holder);
    const h = document.createElement('span');
    h.className = 'holder';
    h.textContent = holder;
    c[STATUS].append(h);
  }
  if (it.ai_error) c[AI].title = it.ai_error;
}

/**
 * cellTitle gives a due or received cell its tooltip, the time in full,
 * when it has none (set on hover: 5,000 rows need not carry them).
 */
export function cellTitle(td, it) {
  if (!it || td.hasAttribute('title')) return;
  if (td.classList.contains('c-due')) {
    td.title = 'due ' + fullTime(dueMS(it));
  } else if (td.classList.contains('c-recv')) {
    const ms = Date.parse(it.received);
    if (isFinite(ms)) td.title = 'received ' + fullTime(ms);
  }
}
