// Critical-arrival alerts: a desktop notification (permission asked on a
// click, as browsers require) and an optional beep made with WebAudio, so
// no audio file is needed.

const soundKey = 'radtriage.sound';

let audio = null;

function audioContext() {
  if (!audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audio = new Ctx();
  }
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

/** beep plays two short tones (880 Hz, then 1320 Hz). */
export function beep() {
  const ctx = audioContext();
  if (!ctx) return;
  const t0 = ctx.currentTime;
  for (const [i, f] of [880, 1320].entries()) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = f;
    const start = t0 + i * 0.18;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.15);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start);
    osc.stop(start + 0.16);
  }
}

/**
 * setupAlerts wires #sound-toggle and #notify-button; it returns the
 * function to call when a critical study arrives.
 */
export function setupAlerts({ soundToggle, notifyButton, onOpen }) {
  soundToggle.checked = localStorage.getItem(soundKey) === 'on';
  soundToggle.addEventListener('change', () => {
    localStorage.setItem(soundKey, soundToggle.checked ? 'on' : 'off');
    if (soundToggle.checked) {
      audioContext(); // created on this click: browsers allow audio after a gesture
      beep();
    }
  });
  // A stored "on" needs a gesture before audio may play.
  const unlock = () => {
    if (soundToggle.checked) audioContext();
    document.removeEventListener('pointerdown', unlock, true);
    document.removeEventListener('keydown', unlock, true);
  };
  document.addEventListener('pointerdown', unlock, true);
  document.addEventListener('keydown', unlock, true);

  const hasNotify = typeof window.Notification === 'function';
  const showPermission = () => {
    if (!hasNotify) {
      notifyButton.hidden = true;
      return;
    }
    const p = Notification.permission;
    notifyButton.textContent = p === 'granted' ? 'Desktop notifications on'
      : p === 'denied' ? 'Desktop notifications blocked' : 'Enable desktop notifications';
    notifyButton.disabled = p !== 'default';
  };
  showPermission();
  notifyButton.addEventListener('click', async () => {
    if (!hasNotify) return;
    try {
      await Notification.requestPermission();
    } catch {
      // Old browsers take a callback; the state is read again below.
    }
    showPermission();
  });

  return function critical(item, text) {
    if (soundToggle.checked) beep();
    if (hasNotify && Notification.permission === 'granted') {
      try {
        const n = new Notification('Critical study', { body: text, tag: 'radtriage-' + item.study_uid, requireInteraction: false });
        n.addEventListener('click', () => {
          window.focus();
          onOpen(item.study_uid);
          n.close();
        });
      } catch {
        // Some platforms allow notifications only from a service worker.
      }
    }
  };
}
