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
 * pageLimit is the most items one list request asks for (the API's
 * maximum). index.html preloads the first page, /api/v1/worklist?limit=500,
 * which fetchWorklist then reads: keep the two URLs the same
 * (api/ui_test.go checks).
 */
export const pageLimit = 500;

/**
 * fetchWorklist reads the whole queue (open and claimed studies, in the
 * API's order), following next_cursor page by page. Each page's request
 * goes out before onPage(items, page, first) is called with the previous
 * one, so that rendering a page overlaps fetching the next; page is the
 * answer (event_id: where the event stream picks up), first true for the
 * first page.
 */
export async function fetchWorklist(onPage, signal) {
  const items = [];
  const pageAt = (cursor) => getJSON('/worklist?limit=' + pageLimit + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''), signal);
  let next = pageAt('');
  let first = true;
  while (next) {
    const page = await next;
    const cursor = page ? page.next_cursor : '';
    next = cursor ? pageAt(cursor) : null;
    // A failed prefetch is reported by the await above on the next turn.
    if (next) next.catch(() => {});
    const got = page && Array.isArray(page.items) ? page.items : [];
    for (const it of got) items.push(it);
    if (onPage) onPage(got, page || {}, first);
    first = false;
  }
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
