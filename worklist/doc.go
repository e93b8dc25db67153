// Package worklist keeps the Redis-backed radiologist worklist: scores,
// claims, aging and events (issue: worklist).
//
// # Ordering
//
// Every study has a tier and a due time. The tier is the most urgent of the
// order's priority (see PriorityTier: STAT → critical, HIGH/URGENT/ASAP →
// urgent, anything else → routine) and the tiers of its AI findings
// (SetFindings, called by triage through the Prioritizer interface). The due
// time is the received time plus the tier's reading deadline
// (Config.Deadlines: critical 15 min, urgent 1 h, routine 8 h by default). A
// manual Override replaces the tier and/or the due time until cleared. The
// queue is sorted by due time, earliest first, ties by study UID (bytewise):
// waiting studies age towards the top, so nothing starves, and every Item
// carries a Reason sentence (tier and why, time left or overdue).
//
// # Redis layout
//
// All keys start with Config.Prefix; times are Unix milliseconds:
//
//	queue        zset  open and claimed study UIDs, score = due time
//	claims       zset  claimed study UIDs, score = lease expiry
//	done         zset  completed study UIDs, score = completion time
//	item:<uid>   hash  the item (fields listed in scripts.go)
//	events       stream, one entry per change, bounded by Config.StreamMaxLen
//
// No key has a TTL: lease expiry and done retention are sorted-set scores
// swept by ExpireLeases with the time from Config.Now, so the same code runs
// on the embedded store (StartEmbedded, miniredis), which does not expire keys
// in real time. Each change is one Lua script (package-level redis.NewScript)
// that checks the state, updates hash and sets and appends the event
// atomically, in one round trip; List takes two.
//
// # Source of truth
//
// Redis holds order, claims and events; the SQL store holds studies,
// findings, overrides and completions (Config.Recorder is told of the last
// three). Rebuild restores the worklist from a Source after Redis lost it.
// Completed items are refused by Upsert for Config.DoneRetention; past it,
// the source of truth must not list them.
package worklist
