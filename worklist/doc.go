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
// carries a Reason sentence (tier and why, "AI pending" or "AI failed" when
// so, time left or overdue).
//
// # AI status
//
// A study enters the worklist as soon as it is stored, with Item.AI pending
// and its tier from the order priority. SetFindings makes it done (and may
// re-tier it, event "reprioritised"); SetAIStatus records a triage that gave
// up (failed, with Item.AIError) or a new version to triage (pending), event
// "ai", without moving the item: a study whose triage failed stays on the
// list, placed by its order priority.
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
//	jobs         stream of triage jobs (Queue), consumer group "triage"
//
// No key has a TTL: lease expiry and done retention are sorted-set scores
// swept by ExpireLeases with the time from Config.Now, so the same code runs
// on the embedded store (StartEmbedded, miniredis), which does not expire keys
// in real time. Each change is one Lua script (package-level redis.NewScript)
// that checks the state, updates hash and sets and appends the event
// atomically, in one round trip; List takes two.
//
// # Job queue
//
// Queue is the transport of triage jobs: a stream of {study, version}
// entries read by workers through a consumer group (XREADGROUP), acked and
// deleted once the job's outcome is committed (Ack), and taken over from a
// dead worker after an idle time (Reclaim, XAUTOCLAIM). The SQL store decides
// which job version runs and who holds it, so a duplicate entry is harmless.
// After Redis lost its data (FLUSHALL), Read and Reclaim recreate the stream
// and group (Ensure), and the caller re-adds the jobs the store still has.
//
// # Source of truth
//
// Redis holds order, claims and events; the SQL store holds studies,
// findings, overrides, completions (Config.Recorder is told of the last
// three) and triage jobs, hence the AI status. Rebuild restores the worklist
// from a Source after Redis lost it.
// Completed items are refused by Upsert for Config.DoneRetention; past it,
// the source of truth must not list them.
package worklist
