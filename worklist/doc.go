// Package worklist keeps the Redis-backed radiologist worklist: scores,
// claims, aging and events (issue: worklist).
package worklist
