// The study panel: the item's facts and why it sits where it does, the
// actions, the AI findings with their explanation and model versions, the
// server-rendered key images and the link to an external viewer.

import { fetchFindings, keyImageURL } from './api.js';
import {
  escapeHTML, tierLabel, personName, percent, millilitres, countdownWords, fullTime, staticReason, viewerHref,
} from './util.js';

const planes = [
  ['axial', 'Axial'],
  ['coronal', 'Coronal'],
  ['sagittal', 'Sagittal'],
];

const windowKey = 'radtriage.window';

/** aiNoteText is what #ai-note says. */
export function aiNoteText(demonstration, models) {
  const never = 'AI findings re-order the worklist but never remove a study from it: every study stays on the list until a radiologist completes it.';
  if (demonstration) {
    return 'AI results on this server come from demonstration models, trained on synthetic phantoms and not clinically validated. ' + never;
  }
  const list = models && models.length ? ' (' + models.join(', ') + ')' : '';
  return 'AI results come from the models this site configured' + list + '. ' + never;
}

/** Panel drives #study-panel. */
export class Panel {
  constructor({ config, onAction }) {
    this.config = config;
    this.el = document.getElementById('study-panel');
    this.title = document.getElementById('panel-title');
    this.facts = document.getElementById('panel-facts');
    this.reason = document.getElementById('panel-reason');
    this.note = document.getElementById('ai-note');
    this.findingsStatus = document.getElementById('findings-status');
    this.findings = document.getElementById('findings');
    this.modelList = document.getElementById('model-list');
    this.windowSel = document.getElementById('window-preset');
    this.imagesStatus = document.getElementById('key-images-status');
    this.images = document.getElementById('key-images');
    this.viewer = document.getElementById('viewer-link');
    this.study = '';
    this.item = null;
    this.ai = '';
    this.hasResult = false;
    // demonstration: the site's word (the cautious note until it comes);
    // resultDemo: the open study's result says so itself.
    this.demonstration = config.demonstration !== false;
    this.resultDemo = false;
    this.fetchCtl = null;
    this.fetchTimer = 0;

    const saved = localStorage.getItem(windowKey);
    if (saved && [...this.windowSel.options].some((o) => o.value === saved)) this.windowSel.value = saved;
    this.windowSel.addEventListener('change', () => {
      localStorage.setItem(windowKey, this.windowSel.value);
      this.renderImages();
    });
    for (const b of this.el.querySelectorAll('button[data-action]')) {
      b.addEventListener('click', () => {
        if (this.study) onAction(b.dataset.action, this.study);
      });
    }
    this.showNote();
  }

  /** setConfig applies the site's configuration (/api/v1/ui/config). */
  setConfig(config) {
    this.config = config;
    this.demonstration = config.demonstration !== false;
    this.showNote();
    if (this.item) this.update(this.item);
  }

  showNote() {
    this.note.textContent = aiNoteText(this.demonstration || this.resultDemo, this.config.models);
  }

  get isOpen() {
    return !this.el.hidden;
  }

  /** show opens the panel on item (or switches it to item). */
  show(item, { focus = false } = {}) {
    const switched = item.study_uid !== this.study;
    this.el.hidden = false;
    document.body.classList.add('panel-open');
    this.update(item);
    if (switched) {
      this.findings.replaceChildren();
      this.modelList.textContent = '';
      this.findingsStatus.textContent = 'Loading findings…';
      this.images.replaceChildren();
      this.imagesStatus.textContent = '';
      this.hasResult = false;
      this.resultDemo = false;
      this.showNote();
      this.loadFindings(true);
    }
    if (focus) this.el.focus();
  }

  /** close hides the panel. */
  close() {
    this.el.hidden = true;
    document.body.classList.remove('panel-open');
    this.study = '';
    this.item = null;
    if (this.fetchCtl) this.fetchCtl.abort();
    clearTimeout(this.fetchTimer);
  }

  /** update re-renders the facts of the open study after a change. */
  update(item) {
    const prevAI = this.item ? this.item.ai : '';
    const prevFinding = this.item ? JSON.stringify(this.item.finding || null) : '';
    const same = item.study_uid === this.study;
    this.study = item.study_uid;
    this.item = item;
    this.el.dataset.study = item.study_uid;
    this.title.textContent = personName(item.patient_name) || item.patient_id || 'Study';
    this.renderFacts(Date.now());
    this.reason.textContent = staticReason(item.reason);
    const href = viewerHref(this.config.viewer_url, item.study_uid);
    this.viewer.hidden = !href;
    if (href) this.viewer.href = href;
    else this.viewer.removeAttribute('href');
    if (same && (prevAI !== item.ai || prevFinding !== JSON.stringify(item.finding || null))) {
      this.loadFindings(false);
    }
  }

  /** tick refreshes the countdown. */
  tick(now) {
    if (this.isOpen && this.item) {
      const dd = this.facts.querySelector('dd.due');
      if (dd) {
        const left = Date.parse(this.item.due) - now;
        dd.textContent = countdownWords(left) + ' (' + fullTime(this.item.due) + ')';
        dd.classList.toggle('overdue', left < 0);
      }
    }
  }

  renderFacts(now) {
    const it = this.item;
    const rows = [];
    const add = (term, html, cls = '') => rows.push('<dt>' + escapeHTML(term) + '</dt><dd' + (cls ? ' class="' + cls + '"' : '') + '>' + html + '</dd>');
    add('Patient', escapeHTML(personName(it.patient_name)) + (it.patient_id ? ' <span class="muted">' + escapeHTML(it.patient_id) + '</span>' : ''));
    add('Accession', escapeHTML(it.accession_number || '—'));
    add('Study', escapeHTML([it.modality, it.body_part].filter(Boolean).join(' · ')) + (it.description ? ' — ' + escapeHTML(it.description) : ''));
    add('Received', escapeHTML(fullTime(it.received)));
    const left = Date.parse(it.due) - now;
    add('Due', escapeHTML(countdownWords(left) + ' (' + fullTime(it.due) + ')'), 'due' + (left < 0 ? ' overdue' : ''));
    let tier = '<span class="badge tier-' + escapeHTML(it.tier) + '">' + escapeHTML(tierLabel(it.tier)) + '</span>';
    if (it.order_priority) tier += ' <span class="muted">order priority ' + escapeHTML(it.order_priority) + '</span>';
    if (it.override) {
      tier += '<br><span class="override">Manual priority by ' + escapeHTML(it.override.by || 'someone') + ': ' + escapeHTML(it.override.reason || '') + '</span>';
    }
    add('Tier', tier);
    let status = escapeHTML(it.status);
    if (it.status === 'claimed') {
      status = 'claimed by <strong>' + escapeHTML(it.claimed_by) + '</strong>';
      if (it.lease_until) status += ' <span class="muted">until ' + escapeHTML(fullTime(it.lease_until)) + '</span>';
    }
    add('Status', status);
    let ai = escapeHTML(it.ai || 'pending');
    if (it.ai === 'failed' && it.ai_error) ai += ': ' + escapeHTML(it.ai_error);
    add('AI', ai, 'ai ai-' + escapeHTML(it.ai || 'pending'));
    this.facts.innerHTML = rows.join('');
  }

  /** loadFindings fetches the findings of the open study (debounced when switching fast). */
  loadFindings(debounce) {
    clearTimeout(this.fetchTimer);
    if (this.fetchCtl) this.fetchCtl.abort();
    const study = this.study;
    const run = async () => {
      const ctl = new AbortController();
      this.fetchCtl = ctl;
      try {
        const ans = await fetchFindings(study, ctl.signal);
        if (study !== this.study) return;
        this.renderFindings(ans);
      } catch (err) {
        if (err.name === 'AbortError' || study !== this.study) return;
        this.findingsStatus.textContent = 'Could not load the findings: ' + err.message;
      }
    };
    if (debounce) this.fetchTimer = setTimeout(run, 120);
    else run();
  }

  renderFindings(ans) {
    const list = [];
    let status = '';
    const result = ans && ans.result ? ans.result : null;
    this.hasResult = !!result;
    if (!ans) {
      status = 'No triage yet: the study is not yet stable, or has not been triaged.';
    } else if (!result) {
      const job = ans.job;
      status = ans.ai === 'failed' ? 'AI triage failed' : 'AI triage pending';
      if (job) {
        status += ' (job ' + job.state + (job.attempts ? ', attempt ' + job.attempts : '') + ')';
        if (job.last_error) status += ': ' + job.last_error;
      }
      status += '.';
    } else {
      if (ans.ai === 'failed') status = 'The latest AI triage failed; showing the previous result. ';
      else if (ans.ai === 'pending') status = 'A newer AI triage is pending; showing the previous result. ';
      const fs = Array.isArray(result.findings) ? result.findings : [];
      if (fs.length === 0) status += 'No positive finding.';
      for (const f of fs) {
        const facts = [percent(f.probability), millilitres(f.volume_ml)];
        if (f.lesions > 1) facts.push(f.lesions + ' lesions');
        list.push(
          '<li class="finding" data-code="' + escapeHTML(f.code) + '">' +
          '<div class="finding-head"><span class="badge tier-' + escapeHTML(f.tier) + '">' + escapeHTML(tierLabel(f.tier)) + '</span> ' +
          '<strong>' + escapeHTML(f.label || f.code) + '</strong> ' +
          '<span class="finding-facts">' + escapeHTML(facts.filter(Boolean).join(' · ')) + '</span></div>' +
          '<p class="explanation">' + escapeHTML(f.explanation || '') + '</p>' +
          '<p class="model-versions">Models: ' + escapeHTML((f.model_versions || []).join(', ') || '—') + '</p>' +
          '</li>');
      }
      // Why the negative codes are negative: the ensemble's evidence.
      const ev = result.evidence || {};
      const negatives = Object.keys(ev).filter((c) => !ev[c].positive && ev[c].explanation).sort();
      if (negatives.length) {
        list.push('<li class="negatives"><details><summary>Not found (' + negatives.length + ')</summary><ul>' +
          negatives.map((c) => '<li><strong>' + escapeHTML(c) + '</strong>: ' + escapeHTML(ev[c].explanation) + '</li>').join('') +
          '</ul></details></li>');
      }
    }
    this.findingsStatus.textContent = status;
    this.findings.innerHTML = list.join('');
    const models = result && Array.isArray(result.models) ? result.models : [];
    this.modelList.textContent = models.length ? 'Ensemble: ' + models.join(', ') + (result.demonstration ? ' (demonstration models)' : '') : '';
    this.resultDemo = !!(result && result.demonstration);
    this.showNote();
    this.renderImages();
  }

  renderImages() {
    if (!this.study) return;
    if (!this.hasResult) {
      this.images.replaceChildren();
      this.imagesStatus.textContent = 'Key images appear once the study has a triage result.';
      return;
    }
    this.imagesStatus.textContent = '';
    const win = this.windowSel.value;
    const winText = this.windowSel.selectedOptions[0] ? this.windowSel.selectedOptions[0].textContent : win;
    let figs = this.images.querySelectorAll('figure');
    if (figs.length !== planes.length || this.images.dataset.study !== this.study) {
      this.images.replaceChildren();
      this.images.dataset.study = this.study;
      for (const [plane, label] of planes) {
        const fig = document.createElement('figure');
        fig.className = 'key-figure key-' + plane;
        const img = document.createElement('img');
        img.className = 'key-image';
        img.dataset.plane = plane;
        img.decoding = 'async';
        img.width = 512;
        img.height = 512;
        img.addEventListener('error', () => fig.classList.add('failed'));
        img.addEventListener('load', () => fig.classList.remove('failed'));
        const cap = document.createElement('figcaption');
        cap.textContent = label;
        const fail = document.createElement('span');
        fail.className = 'key-failed';
        fail.textContent = 'No key image';
        fig.append(img, cap, fail);
        this.images.append(fig);
      }
      figs = this.images.querySelectorAll('figure');
    }
    for (const fig of figs) {
      const img = fig.querySelector('img');
      const plane = img.dataset.plane;
      const label = plane.charAt(0).toUpperCase() + plane.slice(1);
      img.alt = label + ' key image, ' + winText + ' window, lesion outlined';
      img.dataset.window = win;
      const src = keyImageURL(this.study, plane, win);
      if (img.getAttribute('src') !== src) img.src = src;
    }
  }
}
