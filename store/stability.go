package store

import (
	"context"
	"fmt"
	"time"
)

// Study stability states (studies.stable_state).
const (
	stateReceiving = 0 // instances may still arrive
	stateNotifying = 1 // claimed by one process, which is telling its notifier
	stateStable    = 2 // notified; a new instance sets it back to receiving
)

// claimTimeout: a study claimed for notification longer than this (its
// process died mid-way) is claimed again, so no transition is lost.
const claimTimeout = 2 * time.Minute

// defaultStableAge applies when Config.StableAge is not set.
const defaultStableAge = time.Minute

func (db *DB) stableAge() time.Duration {
	if db.cfg.StableAge > 0 {
		return db.cfg.StableAge
	}
	return defaultStableAge
}

// WatchStability runs until ctx ends: every interval it marks studies whose
// last instance arrived more than StableAge ago as stable and tells n.
// Several processes may watch the same database: each transition is
// claimed by exactly one of them (an atomic UPDATE … RETURNING). It
// returns nil when ctx ends.
func (db *DB) WatchStability(ctx context.Context, n StabilityNotifier, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := db.CheckStability(ctx, n); err != nil && ctx.Err() == nil {
			db.log.Warn("stability check failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckStability runs one pass of WatchStability and returns how many
// studies it reported stable. A study whose notification fails goes back
// to receiving and is retried on the next pass.
func (db *DB) CheckStability(ctx context.Context, n StabilityNotifier) (int, error) {
	now := db.now().UnixMicro()
	cutoff := now - db.stableAge().Microseconds()
	reclaim := now - claimTimeout.Microseconds()
	type claimed struct {
		uid       string
		instances int
	}
	var list []claimed
	rows, err := db.wdb.QueryContext(ctx, db.dialect.q(`UPDATE studies SET stable_state = 1, stable_at = ?
		WHERE (stable_state = 0 AND last_received < ?) OR (stable_state = 1 AND stable_at < ?)
		RETURNING uid, num_instances`), now, cutoff, reclaim)
	if err != nil {
		return 0, wrapDBErr(ctx, fmt.Errorf("store: claim stable studies: %w", err))
	}
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.uid, &c.instances); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: claim stable studies: %w", err)
		}
		list = append(list, c)
	}
	if err := rows.Close(); err != nil {
		return 0, wrapDBErr(ctx, fmt.Errorf("store: claim stable studies: %w", err))
	}
	if err := rows.Err(); err != nil {
		return 0, wrapDBErr(ctx, fmt.Errorf("store: claim stable studies: %w", err))
	}

	done := 0
	var firstErr error
	for _, c := range list {
		next, nerr := stateStable, n.StudyStable(ctx, c.uid, c.instances)
		if nerr != nil {
			next = stateReceiving
			db.log.Warn("stable-study notification failed; will retry", "study", c.uid, "err", nerr)
			if firstErr == nil {
				firstErr = fmt.Errorf("store: notify %s stable: %w", c.uid, nerr)
			}
		}
		// Only if still our claim: a new instance meanwhile has set the
		// study back to receiving, and that must stand.
		query := `UPDATE studies SET stable_state = ? WHERE uid = ? AND stable_state = 1 AND stable_at = ?`
		if next == stateReceiving {
			query = `UPDATE studies SET stable_state = ?, stable_at = NULL WHERE uid = ? AND stable_state = 1 AND stable_at = ?`
		}
		// The outcome is recorded even when ctx has ended meanwhile.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_, err := db.wdb.ExecContext(uctx, db.dialect.q(query), next, c.uid, now)
		cancel()
		if err != nil && firstErr == nil {
			firstErr = wrapDBErr(ctx, fmt.Errorf("store: mark %s: %w", c.uid, err))
		}
		if nerr == nil {
			done++
		}
	}
	return done, firstErr
}
