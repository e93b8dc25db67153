// The radtriage HTTP API as the page uses it: the worklist, its changes
// (with the acting user in X-Radtriage-User), findings and the UI config.

const base = '/api/v1';

/** APIError is a failed request, with the server's message. */
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'APIError';
    this.status = status;
  }
}

async function readJSON(resp) {
  let body = null;
  const text = await resp.text();
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!resp.ok) {
    const msg = body && body.error ? body.error : resp.status + ' ' + resp.statusText;
    throw new APIError(resp.status, msg);
  }
  return body;
}

async function getJSON(path, signal) {
  const resp = await fetch(base + path, { headers: { Accept: 'application/json' }, cache: 'no-store', signal });
  return readJSON(resp);
}

function studyPath(study) {
  return '/worklist/' + encodeURIComponent(study);
}

/** fetchConfig reads /api/v1/ui/config. */
export function fetchConfig() {
  return getJSON('/ui/config');
}

/**
 * listPath is the whole queue as one NDJSON stream (GET
 * /api/v1/worklist?format=ndjson: one item per line in the API's order,
 * then {"end": {...}}). index.html preloads /api/v1/worklist?format=ndjson,
 * which fetchWorklist then reads: keep the two URLs the same (api/ui_test.go
 * checks).
 */
export const listPath = '/worklist?format=ndjson';

/**
 * fetchWorklist reads the whole queue (open and claimed studies, in the
 * API's order) from the streamed list, calling onBatch(items, page,
 * first) with the items of each chunk as it arrives (page.event_id: where
 * the event stream picks up, from the X-Radtriage-Event-Id header; first
 * true for the first call), so that the first screenful can be shown and
 * the event stream opened while the rest is still on its way. A chunk's
 * complete lines are parsed in one JSON.parse (as an array). It resolves
 * to every item once the end line is in; a stream cut short, or ending
 * with the server's {"error": ...} line, throws.
 */
export async function fetchWorklist(onBatch, signal) {
  const resp = await fetch(base + listPath, { cache: 'no-store', signal });
  if (!resp.ok) await readJSON(resp); // throws the server's error
  if (!resp.body) throw new APIError(resp.status, 'the list came without a body');
  const page = { event_id: resp.headers.get('X-Radtriage-Event-Id') || '' };
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  const items = [];
  let text = '';
  let end = null;
  let first = true;
  for (;;) {
    const { value, done } = await reader.read();
    if (value) text += decoder.decode(value, { stream: true });
    if (done) text += decoder.decode();
    const cut = done ? text.length : text.lastIndexOf('\n');
    if (cut > 0) {
      const lines = text.slice(0, cut).trim();
      text = text.slice(cut + 1);
      // JSON strings hold no raw newline: joining the lines with commas
      // makes one array of them.
      const batch = lines ? JSON.parse('[' + lines.replace(/\n/g, ',') + ']') : [];
      const last = batch.length ? batch[batch.length - 1] : null;
      if (last && last.error !== undefined) throw new APIError(resp.status, String(last.error));
      if (last && last.end) end = batch.pop().end;
      for (const it of batch) items.push(it);
      if (batch.length || first) {
        if (onBatch) onBatch(batch, page, first);
        first = false;
      }
    }
    if (done) break;
  }
  if (!end) throw new APIError(resp.status, 'the list was cut short (its end line never came)');
  if (end.count !== items.length) throw new APIError(resp.status, 'the list said ' + end.count + ' items and sent ' + items.length);
  return items;
}

/** fetchItem reads one item; null when the worklist no longer holds it. */
export async function fetchItem(study) {
  try {
    return await getJSON(studyPath(study));
  } catch (err) {
    if (err instanceof APIError && err.status === 404) return null;
    throw err;
  }
}

/** fetchFindings reads a study's triage result; null when it has none yet. */
export async function fetchFindings(study, signal) {
  try {
    return await getJSON('/studies/' + encodeURIComponent(study) + '/findings', signal);
  } catch (err) {
    if (err instanceof APIError && err.status === 404) return null;
    throw err;
  }
}

/** keyImageURL is the server-rendered key image of a study. */
export function keyImageURL(study, plane, window) {
  return base + '/studies/' + encodeURIComponent(study) + '/key-image.png?plane=' + encodeURIComponent(plane) +
    '&window=' + encodeURIComponent(window) + '&slice=-1&outline=1';
}

async function change(method, path, user, body) {
  const headers = { Accept: 'application/json', 'X-Radtriage-User': user };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(base + path, init);
  return readJSON(resp);
}

/** claim, release and complete act on a study as user; each returns the item after the change. */
export const claim = (study, user) => change('POST', studyPath(study) + '/claim', user);
export const release = (study, user) => change('POST', studyPath(study) + '/release', user);
export const complete = (study, user) => change('POST', studyPath(study) + '/complete', user);

/** setPriority overrides a study's tier and/or due time, with a reason. */
export function setPriority(study, user, { tier, due, reason }) {
  const body = { reason };
  if (tier) body.tier = tier;
  if (due) body.due = due;
  return change('PUT', studyPath(study) + '/priority', user, body);
}

/** clearPriority removes a study's override. */
export const clearPriority = (study, user) => change('DELETE', studyPath(study) + '/priority', user);

/** eventsURL is the worklist's Server-Sent Events stream, resuming after lastID when given. */
export function eventsURL(lastID) {
  let u = base + '/worklist/events';
  if (lastID) u += '?last_event_id=' + encodeURIComponent(lastID);
  return u;
}
