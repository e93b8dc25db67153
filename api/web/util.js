// Small pure helpers: escaping and formatting. No DOM state here.

const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** escapeHTML makes any string safe inside element text and quoted attribute values. */
export function escapeHTML(s) {
  if (s === undefined || s === null) return '';
  return String(s).replace(/[&<>"']/g, (c) => escapes[c]);
}

/** tierLabel is the tier's display name. */
export function tierLabel(tier) {
  switch (tier) {
    case 'critical': return 'Critical';
    case 'urgent': return 'Urgent';
    case 'routine': return 'Routine';
    default: return tier ? String(tier) : '—';
  }
}

/**
 * personName turns a DICOM PN ("DOE^JANE^^DR") into "DOE, Jane DR"-like
 * display text: family, then given and the other parts.
 */
export function personName(pn) {
  if (!pn) return '';
  const alpha = String(pn).split('=')[0];
  const parts = alpha.split('^').map((p) => p.trim());
  const family = parts[0] || '';
  const rest = [parts[3], parts[1], parts[2], parts[4]].filter((p) => p).join(' ');
  if (family && rest) return family + ', ' + rest;
  return family || rest;
}

/** percent formats a 0-1 probability as "94%". */
export function percent(p) {
  if (typeof p !== 'number' || !isFinite(p)) return '';
  return Math.round(p * 100) + '%';
}

/** millilitres formats a volume as "12.3 mL" ("" for none). */
export function millilitres(v) {
  if (typeof v !== 'number' || !isFinite(v) || v <= 0) return '';
  return (v < 10 ? v.toFixed(1) : v.toFixed(0)) + ' mL';
}

function pad2(n) {
  return n < 10 ? '0' + n : String(n);
}

/**
 * countdown formats the time left until due (ms, negative when overdue):
 * "mm:ss" under an hour, "3h 05m" under two days, "4d 3h" beyond; overdue
 * times get a leading minus sign.
 */
export function countdown(leftMS) {
  const neg = leftMS < 0;
  let s = Math.floor(Math.abs(leftMS) / 1000);
  let text;
  if (s < 3600) {
    text = pad2(Math.floor(s / 60)) + ':' + pad2(s % 60);
  } else if (s < 48 * 3600) {
    const h = Math.floor(s / 3600);
    text = h + 'h ' + pad2(Math.floor((s % 3600) / 60)) + 'm';
  } else {
    const d = Math.floor(s / 86400);
    text = d + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  return neg ? '−' + text : text;
}

/**
 * nextChange is how long (ms) the countdown text of leftMS stays the
 * same: the text shows seconds under an hour, minutes under two days,
 * hours beyond, and changes when the time left crosses the next whole unit.
 */
export function nextChange(leftMS) {
  const a = Math.abs(leftMS);
  const unit = a < 3600e3 ? 1000 : a < 48 * 3600e3 ? 60e3 : 3600e3;
  // Counting down towards the due time the text changes when the time
  // left drops below its current whole unit; once overdue, when the time
  // over reaches the next one.
  const wait = leftMS >= 0 ? (a % unit) + 1 : unit - (a % unit);
  return Math.min(wait, unit);
}

/** countdownWords says the same for screen readers and tooltips. */
export function countdownWords(leftMS) {
  const c = countdown(leftMS).replace('−', '');
  return leftMS < 0 ? 'overdue by ' + c : c + ' left';
}

/** clockTime formats a time as local "HH:MM", with the date when not today. */
export function clockTime(iso, now = new Date()) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d.getTime())) return '';
  const hm = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  if (d.toDateString() === now.toDateString()) return hm;
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + hm;
}

/** fullTime formats a time as local date and time with seconds. */
export function fullTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d.getTime())) return '';
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
    pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
}

/** localInputValue formats a Date for <input type="datetime-local">. */
export function localInputValue(d) {
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + 'T' +
    pad2(d.getHours()) + ':' + pad2(d.getMinutes());
}

/**
 * staticReason drops the "; 12 min left" / "; overdue by …" tail of an
 * item's reason: the due column counts that down live.
 */
export function staticReason(reason) {
  if (!reason) return '';
  return String(reason).replace(/; (overdue by [^;]*|[^;]* left)$/, '');
}

/**
 * viewerHref fills a viewer URL template ({study}); "" unless the result
 * is an http(s) URL.
 */
export function viewerHref(template, study) {
  if (!template || !study) return '';
  const href = template.split('{study}').join(encodeURIComponent(study));
  try {
    const u = new URL(href, window.location.href);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return '';
    return u.href;
  } catch {
    return '';
  }
}
