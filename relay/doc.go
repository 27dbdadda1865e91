// Package relay is hookrelay's engine, free of Caddy: the durable queue
// (NATS JetStream, embedded or clustered), the delivery of each stored
// message to its destination, and the retry policy.
//
// One message is stored per (event, destination) on the subject
// hookrelay.out.<destination> of a work-queue stream. Each destination has
// one durable pull consumer and its own runner, so a slow or dead
// destination never holds others back. A failed attempt is retried on the
// destination's schedule: short delays with NakWithDelay, long ones by
// acknowledging the message and re-publishing it as a scheduled message,
// so that thousands of waiting retries do not sit in a consumer's pending
// set. Exhausted or permanently failed messages move to a dead-letter
// stream with their last status and error.
//
// The package reads in three parts:
//
//   - The queue (queue.go) is the only code that speaks JetStream: it
//     opens the connection (or the embedded server) and the streams, and
//     stores, parks, dead-letters, requeues, pauses and counts messages,
//     with methods named for those. One function builds a stored
//     message's headers.
//   - The delivery: a runner (runner.go) pulls one destination's messages
//     and hands them to its workers, holding back while its circuit
//     breaker (breaker.go) is open; a delivery (delivery.go) is one
//     message in its attempt, and each outcome (delivered, retry, dead
//     letter) finishes it in one place, which also records it for the
//     status (stats.go) and the Observer. A Destination (destination.go,
//     request.go, sign.go) is what an attempt sends and how.
//   - The policy (policy.go): the retry schedule, how an answer is
//     classified, Retry-After, and the Outcome and DeadLetterReason
//     values. The rules a destination's settings follow live in names.go,
//     each once, with exported errors.
//
// The Engine (engine.go) ties them together: configurations register
// their destinations with Apply and withdraw them with Release; Enqueue
// stores a request's events; Stats, Pause, Resume, DeadLetters and
// Replay (deadletter.go) serve operators.
package relay
