// The worklist's live event stream (Server-Sent Events) with resumption:
// EventSource re-sends Last-Event-ID when it reconnects by itself, and when
// it gives up (the server answered an error, say while restarting) a new
// one resumes with ?last_event_id= after a back-off.

import { eventsURL } from './api.js';

/** eventTypes are the event names the server sends (README "Events"). */
export const eventTypes = [
  'added', 'updated', 'reprioritised', 'claimed', 'released', 'completed', 'expired',
  'overridden', 'override-cleared', 'ai', 'rebuilt', 'reset',
];

/**
 * LiveStream keeps one EventSource open. Callbacks:
 * onEvent({id, type, data}) for every event, in order;
 * onState('connecting' | 'open' | 'offline', reconnected) on changes.
 */
export class LiveStream {
  constructor({ onEvent, onState }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastID = '';
    this.started = false;
    this.es = null;
    this.timer = 0;
    this.backoff = 1000;
    this.wasOffline = false;
    this.state = '';
  }

  /**
   * start opens the stream, from the event after lastID when given (the
   * list's event_id: ?last_event_id=), else from now on.
   */
  start(lastID) {
    if (this.started) return;
    this.started = true;
    if (lastID) this.lastID = String(lastID);
    this.connect();
    window.addEventListener('online', () => {
      if (!this.es || this.es.readyState === EventSource.CLOSED) this.reconnectNow();
    });
  }

  setState(s, reconnected = false) {
    if (s === this.state) return;
    this.state = s;
    this.onState(s, reconnected);
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.es) this.es.close();
    const es = new EventSource(eventsURL(this.lastID));
    this.es = es;
    this.setState(this.wasOffline ? 'offline' : 'connecting');
    es.addEventListener('open', () => {
      if (this.es !== es) return;
      this.backoff = 1000;
      const reconnected = this.wasOffline;
      this.wasOffline = false;
      this.setState('open', reconnected);
    });
    es.addEventListener('error', () => {
      if (this.es !== es) return;
      this.wasOffline = true;
      this.setState('offline');
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, not a dropped connection):
        // try again ourselves, resuming after the last event.
        this.timer = setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 15000);
      }
    });
    const handler = (e) => {
      if (this.es !== es) return;
      if (e.lastEventId) this.lastID = e.lastEventId;
      let data = null;
      try {
        data = JSON.parse(e.data);
      } catch {
        data = null;
      }
      this.onEvent({ id: e.lastEventId || '', type: e.type === 'message' && data ? data.type : e.type, data });
    };
    for (const t of eventTypes) es.addEventListener(t, handler);
    es.addEventListener('message', handler);
  }

  /** reconnectNow drops the current connection and resumes at once. */
  reconnectNow() {
    this.wasOffline = true;
    this.connect();
  }
}
