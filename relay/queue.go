package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/relay/event"
)

// Stream and subject names. One work-queue stream carries every pending
// delivery on a subject per destination; a second stream keeps dead letters.
const (
	StreamOut       = "HOOKRELAY_OUT"
	StreamDead      = "HOOKRELAY_DLQ"
	subjectOut      = "hookrelay.out."
	subjectSchedule = "hookrelay.sched."
	subjectDead     = "hookrelay.dlq."
	consumerPrefix  = "hr_"
	// lanePrefix names an ordered destination's lane consumers:
	// hro_<destination>_<lane>. A destination name never holds a dot,
	// and the lane is the last _ part, so no two names collide, nor
	// with hr_ and hrs_ names.
	lanePrefix = "hro_"
	// counterPrefix names a destination's scheduled-retry counter: a
	// consumer that is never pulled from, whose pending count is the
	// number of the destination's parked retries. The server keeps that
	// count as messages come and go, so reading it costs the same
	// whether one retry is parked or a million.
	counterPrefix = "hrs_"
)

// maxStreamConsumers is the delivery stream's consumer limit.
const maxStreamConsumers = 1 << 20

// Message headers hookrelay sets on stored messages.
const (
	HeaderAttempts    = "Hookrelay-Attempts"
	HeaderFirstSeen   = "Hookrelay-First-Seen"
	HeaderDestination = "Hookrelay-Destination"
	HeaderLastStatus  = "Hookrelay-Last-Status"
	HeaderLastError   = "Hookrelay-Last-Error"
	HeaderDeadAt      = "Hookrelay-Dead-At"
	HeaderReason      = "Hookrelay-Reason"
)

// QueueConfig says where the queue lives and how it keeps what it stores.
type QueueConfig struct {
	// URLs of an existing NATS cluster. Empty means embedded: a JetStream
	// server runs inside the process, reached over an in-process
	// connection, with no port opened.
	URLs []string
	// Dir is the embedded server's store directory.
	Dir string
	// Credentials is a NATS credentials file for URLs.
	Credentials string
	// TLSCA is a PEM file of the certificate authorities that sign the
	// cluster's server certificates; empty means the system's roots.
	// Setting it, or TLSCert, makes the connection require TLS.
	TLSCA string
	// TLSCert and TLSKey are PEM files of the client certificate and its
	// key, for clusters that verify clients (mutual TLS); both or neither.
	TLSCert string
	TLSKey  string
	// Replicas of each stream on a cluster; 0 means 3 for a cluster, 1
	// embedded.
	Replicas int
	// SyncAlways makes the embedded server fsync every write before it
	// acknowledges it.
	SyncAlways bool
	// SyncInterval is how often the embedded server fsyncs when SyncAlways
	// is false; 0 means 1s.
	SyncInterval time.Duration
	// DedupeWindow is how long a message id is remembered to drop resends;
	// 0 means 10 minutes. JetStream keeps every id of the window in memory
	// (on the order of 150 bytes each), so the cost grows with traffic
	// times the window.
	DedupeWindow time.Duration
	// DeadLetterRetention is how long dead letters are kept; 0 means 30
	// days.
	DeadLetterRetention time.Duration
	// MaxBytes bounds the deliveries waiting (the delivery stream). While
	// they take this much or more, Enqueue refuses new events with
	// ErrFull (ingress answers 503) and nothing waiting is dropped;
	// retries and replays are still stored. The size is read about every
	// half second, so a burst can pass it by that much. 0 means no bound
	// but the server's storage.
	MaxBytes int64
	// DeadLetterMaxBytes bounds the dead letters kept; when it is reached
	// the oldest are dropped to make room. 0 means 1 GiB.
	DeadLetterMaxBytes int64
}

// DefaultDeadLetterMaxBytes is the dead letters' bound unless
// QueueConfig.DeadLetterMaxBytes says otherwise.
const DefaultDeadLetterMaxBytes = 1 << 30

// ErrQueueConfig is wrapped by QueueConfig.Validate's errors.
var ErrQueueConfig = errors.New("invalid queue configuration")

// Validate checks the configuration: no negative duration, replica count
// or bound, and a client certificate with its key or neither.
func (s QueueConfig) Validate() error {
	switch {
	case s.SyncInterval < 0 || s.DedupeWindow < 0 || s.DeadLetterRetention < 0:
		return fmt.Errorf("%w: durations cannot be negative", ErrQueueConfig)
	case s.Replicas < 0:
		return fmt.Errorf("%w: replicas cannot be negative", ErrQueueConfig)
	case s.MaxBytes < 0 || s.DeadLetterMaxBytes < 0:
		return fmt.Errorf("%w: the queue limit and the dead-letter limit cannot be negative", ErrQueueConfig)
	case (s.TLSCert == "") != (s.TLSKey == ""):
		return fmt.Errorf("%w: a client certificate needs its key, and a key its certificate", ErrQueueConfig)
	}
	return nil
}

// Embedded reports whether the storage is the embedded server.
func (s QueueConfig) Embedded() bool { return len(s.URLs) == 0 }

// Key identifies the store: two configurations with the same key share
// one queue.
func (s QueueConfig) Key() string {
	if s.Embedded() {
		return "embedded:" + s.Dir
	}
	return "nats:" + strings.Join(s.URLs, ",")
}

func (s QueueConfig) withDefaults() QueueConfig {
	if s.Replicas <= 0 {
		s.Replicas = 1
		if !s.Embedded() {
			s.Replicas = 3
		}
	}
	if s.SyncInterval <= 0 {
		s.SyncInterval = time.Second
	}
	if s.DedupeWindow <= 0 {
		s.DedupeWindow = 10 * time.Minute
	}
	if s.DeadLetterRetention <= 0 {
		s.DeadLetterRetention = 30 * 24 * time.Hour
	}
	if s.DeadLetterMaxBytes <= 0 {
		s.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	return s
}

// EmbeddedMaxPayload is the embedded server's largest message: 64 MiB, so
// that an event of a body at hook_normalize's or hook_relay's default
// max_body (20MB), proofs of delivery included, fits in one message.
const EmbeddedMaxPayload = 64 << 20

// queue is the JetStream connection and the streams hookrelay uses.
type queue struct {
	// updateMu keeps stream updates apart from consumer updates:
	// nats-server 2.15 races on the stream's store config when a stream
	// update and a consumer create run at once (the race detector
	// reports it). Stream updates and consumer state changes hold it to
	// write; consumer creations, which thousands of registered webhooks
	// may need at once, hold it to read and run together.
	updateMu sync.RWMutex
	mu       sync.Mutex // guards storage
	storage  QueueConfig
	srv      *server.Server // nil when external
	nc       *nats.Conn
	closing  atomic.Bool
	js       jetstream.JetStream
	log      *zap.Logger
}

func openQueue(ctx context.Context, st QueueConfig, log *zap.Logger) (*queue, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	st = st.withDefaults()
	q := &queue{storage: st, log: log}
	var opts []nats.Option
	opts = append(opts,
		nats.Name("hookrelay"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if q.closing.Load() {
				return
			}
			log.Warn("queue connection lost; ingress answers 503 and delivery pauses until it returns", zap.Error(err))
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("queue connection restored", zap.String("server", c.ConnectedUrlRedacted()))
		}),
		// The first connection; when Caddy started while the cluster
		// was unreachable, this is when ingress stops answering 503.
		nats.ConnectHandler(func(c *nats.Conn) {
			log.Info("queue connected", zap.String("server", c.ConnectedUrlRedacted()))
		}),
		// Never hold publishes in a client buffer while disconnected: a
		// sender must get 503 at once rather than a 201 for an event
		// that only sits in memory.
		nats.ReconnectBufSize(-1),
	)
	url := strings.Join(st.URLs, ",")
	if st.Embedded() {
		if err := os.MkdirAll(st.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating queue directory: %w", err)
		}
		sopts := &server.Options{
			ServerName: "hookrelay",
			DontListen: true,
			MaxPayload: EmbeddedMaxPayload,
			// Room for a full fetch of large messages: a destination
			// takes up to its workers and 16 more messages at once.
			MaxPending:      EmbeddedMaxPayload * 8,
			JetStream:       true,
			StoreDir:        st.Dir,
			SyncAlways:      st.SyncAlways,
			SyncInterval:    st.SyncInterval,
			NoSigs:          true,
			NoSystemAccount: true,
		}
		srv, err := server.NewServer(sopts)
		if err != nil {
			return nil, fmt.Errorf("embedded queue: %w", err)
		}
		srv.SetLoggerV2(natsLogger{log.Named("nats")}, false, false, false)
		srv.Start() // does not block
		if !srv.ReadyForConnections(30 * time.Second) {
			srv.Shutdown()
			return nil, errors.New("embedded queue did not start within 30s")
		}
		q.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		if st.Credentials != "" {
			opts = append(opts, nats.UserCredentials(st.Credentials))
		}
		if st.TLSCA != "" {
			opts = append(opts, nats.RootCAs(st.TLSCA))
		}
		if st.TLSCert != "" || st.TLSKey != "" {
			opts = append(opts, nats.ClientCert(st.TLSCert, st.TLSKey))
		}
	}
	if !st.Embedded() {
		// Keep trying to connect at start too: a cluster that is down
		// when Caddy starts must not keep Caddy from starting.
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		q.shutdownServer()
		return nil, fmt.Errorf("connecting to the queue: %w", err)
	}
	q.nc = nc
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(1<<16),
	)
	if err != nil {
		q.close()
		return nil, err
	}
	q.js = js
	if err := q.ensureStreams(ctx); err != nil {
		if st.Embedded() {
			q.close()
			return nil, err
		}
		// An external cluster may be unreachable now; the streams are
		// ensured again before each consumer is created.
		log.Warn("queue streams not ready yet; retrying in the background", zap.Error(err))
	}
	return q, nil
}

func reconnectDelay(attempts int) time.Duration {
	d := time.Duration(attempts) * 250 * time.Millisecond
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d
}

// ensureStreams creates or updates both streams; it is idempotent and safe
// to run from every node of a cluster.
func (q *queue) ensureStreams(ctx context.Context) error {
	return q.createStreams(ctx, q.settings())
}

// createStreams creates or updates both streams with st's settings.
func (q *queue) createStreams(ctx context.Context, st QueueConfig) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// MaxBytes is enforced by Enqueue, not by the stream: a stream with
	// message schedules cannot discard new messages, and discarding old
	// ones would drop events waiting for delivery.
	_, err := q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              StreamOut,
		Description:       "hookrelay: deliveries waiting for their destination",
		Subjects:          []string{subjectOut + ">", subjectSchedule + ">"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          st.Replicas,
		Duplicates:        st.DedupeWindow,
		AllowMsgSchedules: true,
		AllowRollup:       true,
		// Two consumers per destination, and registered webhooks may
		// number thousands: above the servers' default of 1000 per
		// stream (nats-server 2.15), which a stream's own limit
		// replaces. An account limit of a cluster still applies.
		MaxConsumers: maxStreamConsumers,
	})
	if err != nil {
		return fmt.Errorf("creating stream %s: %w", StreamOut, err)
	}
	_, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamDead,
		Description: "hookrelay: dead letters, kept for inspection and replay",
		Subjects:    []string{subjectDead + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas,
		MaxAge:      st.DeadLetterRetention,
		MaxBytes:    st.DeadLetterMaxBytes,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("creating stream %s: %w", StreamDead, err)
	}
	return nil
}

// settings returns the storage settings in force.
func (q *queue) settings() QueueConfig {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.storage
}

// reconfigure applies a later configuration's stream settings (dedupe
// window, dead-letter retention, replicas, size bounds) to both streams, and keeps
// them only once the streams took them. It reports whether the fsync
// settings, which belong to the embedded server and cannot change while
// it runs, differ.
func (q *queue) reconfigure(ctx context.Context, st QueueConfig) (restartNeeded bool, err error) {
	if err := st.Validate(); err != nil {
		return false, err
	}
	q.updateMu.Lock()
	defer q.updateMu.Unlock()
	st = st.withDefaults()
	next := q.settings()
	restartNeeded = next.Embedded() && (st.SyncAlways != next.SyncAlways || st.SyncInterval != next.SyncInterval)
	if st.DedupeWindow == next.DedupeWindow && st.DeadLetterRetention == next.DeadLetterRetention && st.Replicas == next.Replicas &&
		st.MaxBytes == next.MaxBytes && st.DeadLetterMaxBytes == next.DeadLetterMaxBytes {
		return restartNeeded, nil
	}
	next.DedupeWindow, next.DeadLetterRetention, next.Replicas = st.DedupeWindow, st.DeadLetterRetention, st.Replicas
	next.MaxBytes, next.DeadLetterMaxBytes = st.MaxBytes, st.DeadLetterMaxBytes
	if err := q.createStreams(ctx, next); err != nil {
		return restartNeeded, err
	}
	q.mu.Lock()
	q.storage = next
	q.mu.Unlock()
	return restartNeeded, nil
}

func (q *queue) shutdownServer() {
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
		q.srv = nil
	}
}

func (q *queue) close() {
	q.closing.Store(true)
	if q.nc != nil {
		// Flush what is buffered, then close.
		_ = q.nc.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !q.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		q.nc.Close()
	}
	q.shutdownServer()
}

// Subjects and consumer names of a destination.
func outSubject(dest string) string          { return subjectOut + dest }
func scheduleSubject(dest, id string) string { return subjectSchedule + dest + "." + id }
func deadSubject(dest string) string {
	if dest == "" {
		return subjectDead + ">"
	}
	return subjectDead + dest
}
func consumerName(dest string) string { return consumerPrefix + dest }

// laneSubject is the subject of lane of an ordered destination.
func laneSubject(dest string, lane int) string {
	return subjectOut + dest + "." + strconv.Itoa(lane)
}

// laneConsumerName is the consumer of lane of an ordered destination.
func laneConsumerName(dest string, lane int) string {
	return lanePrefix + dest + "_" + strconv.Itoa(lane)
}

// storedHeader builds the headers of a message hookrelay stores: the
// event id (every attempt's webhook-id), the attempts already made, when
// the event was first stored (RFC 3339, its retry budget starts there),
// and kv, more header names and values in pairs.
func storedHeader(eventID string, attempts int, firstSeen string, kv ...string) nats.Header {
	h := make(nats.Header, 3+len(kv)/2)
	h[HeaderEvent] = []string{eventID}
	h[HeaderAttempts] = []string{strconv.Itoa(attempts)}
	h[HeaderFirstSeen] = []string{firstSeen}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = []string{kv[i+1]}
	}
	return h
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func headerInt(h nats.Header, key string) int {
	n, _ := strconv.Atoi(h.Get(key))
	if n < 0 {
		return 0
	}
	return n
}

// connected reports whether the connection to the queue is up.
func (q *queue) connected() bool { return q.nc.IsConnected() }

// maxPayload is the largest message the queue's servers take; 0 while
// the queue was never reached.
func (q *queue) maxPayload() int64 { return q.nc.MaxPayload() }

// deliveryMsg is the stored form of a new delivery of one event on
// subject, a destination's or one of its lanes. msgID drops resends of it
// within the dedupe window.
func deliveryMsg(subject, eventID, msgID, firstSeen string, body []byte) *nats.Msg {
	h := headerValues{vals: []string{firstSeen, eventID}}
	return &nats.Msg{Subject: subject, Header: h.delivery(0, msgID), Data: body}
}

// headerValues holds the header values of the new deliveries of one
// Enqueue in one slice: when the deliveries were first seen, then the
// event ids, then the message ids as they are added. The headers share
// them: each takes a one-element slice of vals, with its capacity cut so
// that an append to it cannot reach the next. nats.go only reads them.
type headerValues struct {
	vals []string
}

// newHeaderValues makes the header values of n deliveries of events.
func newHeaderValues(events []event.Event, n int, firstSeen string) headerValues {
	vals := make([]string, 1+len(events), 1+len(events)+n)
	vals[0] = firstSeen
	for i := range events {
		vals[1+i] = events[i].ID
	}
	return headerValues{vals: vals}
}

// delivery returns the headers of a new delivery of event i: its id
// (every attempt's webhook-id), when it was first seen (RFC 3339, its
// retry budget starts there) and msgID, which drops resends of it within
// the dedupe window. They hold no attempt count: a message without one
// has made no attempt (see headerInt).
func (hv *headerValues) delivery(i int, msgID string) nats.Header {
	k := len(hv.vals)
	hv.vals = append(hv.vals, msgID)
	return nats.Header{
		HeaderEvent:           hv.vals[1+i : 2+i : 2+i],
		HeaderFirstSeen:       hv.vals[0:1:1],
		jetstream.MsgIDHeader: hv.vals[k : k+1 : k+1],
	}
}

// storeOpts are the options of every publish of storeDeliveries: made
// once, since each option is an allocation. A publish waits up to 5s
// for room when WithPublishAsyncMaxPending acknowledgements are pending.
var storeOpts = []jetstream.PublishOpt{jetstream.WithStallWait(5 * time.Second)}

// storeDeliveries stores msgs and returns once JetStream acknowledged
// every one of them, or with the first failure (some may be stored).
func (q *queue) storeDeliveries(ctx context.Context, msgs []nats.Msg) error {
	var few [4]jetstream.PubAckFuture
	futures := few[:0]
	for i := range msgs {
		f, err := q.js.PublishMsgAsync(&msgs[i], storeOpts...)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// scheduleRetry parks a delivery as a scheduled message that JetStream
// publishes back to the destination's subject at the given second.
func (q *queue) scheduleRetry(ctx context.Context, dest, eventID string, attempts int, firstSeen time.Time, at time.Time, body []byte) error {
	m := &nats.Msg{
		Subject: scheduleSubject(dest, eventID),
		Header: storedHeader(eventID, attempts, formatTime(firstSeen),
			jetstream.ScheduleHeader, "@at "+at.UTC().Format(time.RFC3339),
			jetstream.ScheduleTargetHeader, outSubject(dest)),
		Data: body,
	}
	_, err := q.js.PublishMsg(ctx, m)
	return err
}

// deadRecord is what a dead letter keeps besides the event: never a
// response body or a credential, and at most maxLastError bytes of the
// last error.
type deadRecord struct {
	dest      string
	eventID   string
	attempts  int
	firstSeen time.Time
	status    int
	lastError string
	reason    DeadLetterReason
}

// maxLastError is how much of the last error a dead letter keeps.
const maxLastError = 512

// storeDeadLetter stores a dead letter. The stream is bounded
// (QueueConfig.DeadLetterMaxBytes) and drops its oldest messages to make
// room; dropped is told how many this store pushed out, read from the
// stream's count before and after (on a cluster, concurrent stores of
// other nodes can blur it).
func (q *queue) storeDeadLetter(ctx context.Context, r deadRecord, body []byte, dropped func(n uint64)) error {
	m := &nats.Msg{
		Subject: deadSubject(r.dest),
		Header: storedHeader(r.eventID, r.attempts, formatTime(r.firstSeen),
			HeaderDestination, r.dest,
			HeaderLastStatus, strconv.Itoa(r.status),
			HeaderLastError, r.lastError,
			HeaderDeadAt, formatTime(time.Now()),
			HeaderReason, string(r.reason)),
		Data: body,
	}
	s, err := q.js.Stream(ctx, StreamDead)
	if err != nil {
		return err
	}
	before := s.CachedInfo().State
	full := before.Bytes+uint64(len(m.Data))+messageHeadroom > uint64(q.settings().DeadLetterMaxBytes)
	if _, err := q.js.PublishMsg(ctx, m); err != nil {
		return err
	}
	if !full {
		return nil
	}
	after, err := s.Info(ctx)
	if err != nil {
		return nil
	}
	if n := before.Msgs + 1; after.State.Msgs < n {
		dropped(n - after.State.Msgs)
	}
	return nil
}

// deadLetters lists up to limit dead letters of dest ("" for all) from
// stream sequence after (exclusive), oldest first, and the sequence to
// pass as after for the next page, 0 at the end.
func (q *queue) deadLetters(ctx context.Context, dest string, after uint64, limit int) ([]DeadLetter, uint64, error) {
	s, err := q.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, 0, err
	}
	subj := deadSubject(dest)
	var out []DeadLetter
	seq := after + 1
	for len(out) < limit {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return out, 0, err
		}
		out = append(out, deadLetterFromMsg(m.Sequence, m.Header, m.Data))
		seq = m.Sequence + 1
	}
	return out, seq - 1, nil
}

// deadLetterCounts counts the stored dead letters by destination; dest
// "" counts every destination's.
func (q *queue) deadLetterCounts(ctx context.Context, dest string) (map[string]uint64, error) {
	s, err := q.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", StreamDead, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(deadSubject(dest)))
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", StreamDead, err)
	}
	counts := make(map[string]uint64)
	for subj, n := range info.State.Subjects {
		counts[strings.TrimPrefix(subj, subjectDead)] += n
	}
	return counts, nil
}

// requeue moves the dead letter with stream sequence seq back to its
// destination's subject with a fresh retry budget (attempts 0, first
// seen now) and deletes it from the dead letters. It returns the
// destination, or "" when there is no such dead letter or keep refuses
// its destination.
func (q *queue) requeue(ctx context.Context, seq uint64, keep func(dest string) bool) (string, error) {
	s, err := q.js.Stream(ctx, StreamDead)
	if err != nil {
		return "", err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	dl := deadLetterFromMsg(m.Sequence, m.Header, m.Data)
	if !ValidName(dl.Destination) || !keep(dl.Destination) {
		return "", nil
	}
	// A replay is a new delivery: its own message id, so that the dedupe
	// window does not drop it.
	msgID := dl.EventID + "." + dl.Destination + ".replay." + strconv.FormatUint(seq, 10)
	// It goes to the destination's own subject, not to a lane: it is
	// delivered on its own, and for an ordered destination it may
	// arrive after newer events of its key.
	if _, err := q.js.PublishMsg(ctx, deliveryMsg(outSubject(dl.Destination), dl.EventID, msgID, formatTime(time.Now()), m.Data)); err != nil {
		return "", err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", err
	}
	return dl.Destination, nil
}

// deliveriesBytes is the size of the deliveries stream.
func (q *queue) deliveriesBytes(ctx context.Context) (int64, error) {
	s, err := q.js.Stream(ctx, StreamOut)
	if err != nil {
		return 0, err
	}
	return int64(s.CachedInfo().State.Bytes), nil
}

// consumerSettings are what a destination's consumer is made of.
type consumerSettings struct {
	dest       string
	ackWait    time.Duration
	maxPending int
	// lazy marks a destination whose runner runs only while it has
	// messages (a registered webhook): its consumer is deleted by the
	// server once no node pulled from it for lazyInactive, and it has no
	// scheduled-retry counter (scheduledCount counts its subjects).
	lazy bool
	// lane, when isLane, makes these the settings of that lane's
	// consumer of an ordered destination: it hands out one message at a
	// time (MaxAckPending 1), so that the next one waits until the head
	// is acknowledged, whichever node holds it, and a head that waits for
	// a retry (NakWithDelay) holds its lane back without holding a
	// message in any node's memory.
	lane   int
	isLane bool
}

// laneSettings are the settings of lane's consumer of the same
// destination.
func (cs consumerSettings) laneSettings(lane int) consumerSettings {
	cs.lane, cs.isLane, cs.maxPending = lane, true, 1
	return cs
}

// name is the consumer's name.
func (cs consumerSettings) name() string {
	if cs.isLane {
		return laneConsumerName(cs.dest, cs.lane)
	}
	return consumerName(cs.dest)
}

// lazyInactive is how long a lazy destination's consumer outlives the
// last pull from it.
const lazyInactive = time.Minute

// laneInactive is how long a static destination's lane consumer outlives
// the last pull from it: the consumers of a destination taken out of the
// configuration, or of lanes a smaller lane count left, are deleted by
// the server then. Deleting one loses nothing: its messages stay in the
// stream, and a new consumer hands them out again in order (only the
// delay of a waiting retry is forgotten).
const laneInactive = 24 * time.Hour

// consumerConfig is the destination's durable consumer. Every node of a
// cluster shares it, so each message goes to one node.
func (cs consumerSettings) config() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       cs.name(),
		Description:   "hookrelay deliveries to " + cs.dest,
		FilterSubject: outSubject(cs.dest),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Short, so that what a dead node held comes back within
		// seconds; the runner's heartbeat keeps held messages from
		// coming back while this node works on them.
		AckWait:       cs.ackWait,
		MaxDeliver:    -1,
		MaxAckPending: cs.maxPending,
	}
	if cs.lazy {
		cfg.InactiveThreshold = lazyInactive
	}
	if cs.isLane {
		cfg.Description = "hookrelay ordered deliveries to " + cs.dest + ", lane " + strconv.Itoa(cs.lane)
		cfg.FilterSubject = laneSubject(cs.dest, cs.lane)
		cfg.MaxAckPending = 1
		if !cs.lazy {
			cfg.InactiveThreshold = laneInactive
		}
	}
	return cfg
}

// openConsumer creates or updates the destination's durable consumer,
// keeping its pause and gone mark across updates, and its scheduled-retry
// counter.
func (q *queue) openConsumer(ctx context.Context, cs consumerSettings) (jetstream.Consumer, error) {
	cfg := cs.config()
	q.updateMu.RLock()
	cfg.PauseUntil, cfg.Metadata = q.consumerState(ctx, cfg.Durable)
	if cs.isLane && cfg.PauseUntil == nil {
		// A new lane of a paused destination starts paused: the pause
		// lives in every consumer of the destination.
		cfg.PauseUntil, _ = q.consumerState(ctx, consumerName(cs.dest))
	}
	c, err := q.js.CreateOrUpdateConsumer(ctx, StreamOut, cfg)
	q.updateMu.RUnlock()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// A cluster that came back without its state, or a deleted
		// stream: create the streams again.
		q.updateMu.Lock()
		err = q.createStreams(ctx, q.settings())
		if err == nil {
			c, err = q.js.CreateOrUpdateConsumer(ctx, StreamOut, cfg)
		}
		q.updateMu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	if cs.lazy || cs.isLane {
		return c, nil
	}
	q.updateMu.RLock()
	defer q.updateMu.RUnlock()
	if err := q.ensureScheduledCounter(ctx, cs.dest); err != nil {
		q.log.Debug("cannot create the scheduled-retry counter; status shows 0 scheduled",
			zap.String("destination", cs.dest), zap.Error(err))
	}
	return c, nil
}

// consumerInfo returns what JetStream knows of the destination's
// consumer; nil when it was not created yet.
func (q *queue) consumerInfo(ctx context.Context, dest string) (*jetstream.ConsumerInfo, error) {
	return q.consumerInfoNamed(ctx, consumerName(dest))
}

// consumerInfoNamed returns what JetStream knows of a consumer of the
// delivery stream; nil when it does not exist.
func (q *queue) consumerInfoNamed(ctx context.Context, name string) (*jetstream.ConsumerInfo, error) {
	c, err := q.js.Consumer(ctx, StreamOut, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

// metaGone is the consumer metadata key of the gone mark: the time the
// destination answered 410.
const metaGone = "hookrelay_gone"

// goneSince reads a consumer's gone mark.
func goneSince(info *jetstream.ConsumerInfo) (time.Time, bool) {
	v, ok := info.Config.Metadata[metaGone]
	if !ok {
		return time.Time{}, false
	}
	t, _ := time.Parse(time.RFC3339, v)
	return t, true
}

// setConsumerState pauses the destination's consumer for pauseFor (0
// resumes it) and sets or clears its gone mark, keeping the rest of its
// configuration. Both live in JetStream, so every node sees them and
// they survive restarts.
func (q *queue) setConsumerState(ctx context.Context, cs consumerSettings, pauseFor time.Duration, gone bool) error {
	q.updateMu.Lock()
	defer q.updateMu.Unlock()
	cfg := cs.config()
	until, meta := q.consumerState(ctx, cfg.Durable)
	if cs.isLane {
		gone = false // the mark lives in the destination's own consumer
	}
	_, wasGone := meta[metaGone]
	if gone != wasGone || until == nil && pauseFor > 0 {
		// The mark is in the consumer's metadata: update the consumer
		// (paused, so that nothing is handed out in between).
		if gone {
			if meta == nil {
				meta = map[string]string{}
			}
			meta[metaGone] = time.Now().UTC().Format(time.RFC3339)
		} else {
			delete(meta, metaGone)
		}
		cfg.Metadata = meta
		if until == nil {
			forever := time.Now().Add(pauseForever)
			until = &forever
		}
		cfg.PauseUntil = until
		if _, err := q.js.CreateOrUpdateConsumer(ctx, StreamOut, cfg); err != nil {
			return err
		}
	}
	// The server's ResumeConsumer does not wake the pull requests that
	// wait on a paused consumer (nats-server 2.15: they are served only
	// at their expiry), while a pause that ends on its own does; so a
	// resume is a pause that ends in a moment.
	end := time.Now().Add(resumeDelay)
	if pauseFor > 0 {
		end = time.Now().Add(pauseFor)
	}
	_, err := q.js.PauseConsumer(ctx, StreamOut, cfg.Durable, end)
	if pauseFor == 0 && errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil // nothing to resume
	}
	return err
}

// consumerState returns the pause deadline and metadata of an existing
// consumer, so that updating its configuration keeps both.
func (q *queue) consumerState(ctx context.Context, consumer string) (*time.Time, map[string]string) {
	c, err := q.js.Consumer(ctx, StreamOut, consumer)
	if err != nil {
		return nil, nil
	}
	info := c.CachedInfo()
	var until *time.Time
	if info.Paused && info.Config.PauseUntil != nil {
		until = info.Config.PauseUntil
	}
	var meta map[string]string
	for k, v := range info.Config.Metadata {
		// The server adds its own _nats.* keys; they are not ours to set.
		if strings.HasPrefix(k, "_nats") {
			continue
		}
		if meta == nil {
			meta = make(map[string]string)
		}
		meta[k] = v
	}
	return until, meta
}

// ensureScheduledCounter creates the destination's scheduled-retry
// counter if it does not exist. It is never pulled from, so it holds no
// message and acknowledges none; its state lives in memory on one
// replica and is recomputed by the server if lost.
func (q *queue) ensureScheduledCounter(ctx context.Context, dest string) error {
	_, err := q.js.Consumer(ctx, StreamOut, counterPrefix+dest)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	_, err = q.js.CreateConsumer(ctx, StreamOut, jetstream.ConsumerConfig{
		Durable:       counterPrefix + dest,
		Description:   "hookrelay: counts the parked retries of " + dest + " (never pulled)",
		FilterSubject: subjectSchedule + dest + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		MemoryStorage: true,
		Replicas:      1,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		return nil
	}
	return err
}

// scheduledCount returns how many retries of dest are parked as
// scheduled messages: its counter's count, or, for a destination without
// one (a lazy one), the count of its scheduled subjects.
func (q *queue) scheduledCount(ctx context.Context, dest string) uint64 {
	c, err := q.js.Consumer(ctx, StreamOut, counterPrefix+dest)
	if err == nil {
		return c.CachedInfo().NumPending
	}
	subjects, err := q.subjectCounts(ctx, subjectSchedule+dest+".>")
	if err != nil {
		return 0
	}
	var n uint64
	for _, c := range subjects {
		n += c
	}
	return n
}

// subjectCounts returns the number of messages of each subject of the
// delivery stream that matches filter and has any.
func (q *queue) subjectCounts(ctx context.Context, filter string) (map[string]uint64, error) {
	s, err := q.js.Stream(ctx, StreamOut)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	return info.State.Subjects, nil
}

// waitingWebhooks returns the names of the registered webhooks with
// deliveries waiting in their subjects.
func (q *queue) waitingWebhooks(ctx context.Context) ([]string, error) {
	// Every destination's subject, and the lanes of ordered ones.
	subjects, err := q.subjectCounts(ctx, subjectOut+">")
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool)
	var names []string
	for s := range subjects {
		name, _, _ := strings.Cut(strings.TrimPrefix(s, subjectOut), ".")
		if strings.HasPrefix(name, webhookPrefix) && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names, nil
}

// laneCounts returns the number of messages stored in each lane of dest
// that has any, by lane.
func (q *queue) laneCounts(ctx context.Context, dest string) (map[int]uint64, error) {
	subjects, err := q.subjectCounts(ctx, subjectOut+dest+".*")
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint64, len(subjects))
	for s, n := range subjects {
		lane, err := strconv.Atoi(strings.TrimPrefix(s, subjectOut+dest+"."))
		if err == nil && lane >= 0 {
			out[lane] += n
		}
	}
	return out, nil
}

// firstScheduled reads the due time of the oldest parked retry of dest.
func (q *queue) firstScheduled(ctx context.Context, dest string) (time.Time, bool) {
	s, err := q.js.Stream(ctx, StreamOut)
	if err != nil {
		return time.Time{}, false
	}
	m, err := s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subjectSchedule+dest+".>"))
	if err != nil {
		return time.Time{}, false
	}
	at, ok := strings.CutPrefix(m.Header.Get(jetstream.ScheduleHeader), "@at ")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, at)
	return t, err == nil
}

// natsLogger sends the embedded server's log lines to zap.
type natsLogger struct{ l *zap.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  {}

// keyValue opens, creating or updating it, a key-value bucket stored
// like the streams (file storage, the queue's replicas).
func (q *queue) keyValue(ctx context.Context, bucket, description string) (jetstream.KeyValue, error) {
	q.updateMu.Lock()
	defer q.updateMu.Unlock()
	kv, err := q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: description,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    q.settings().Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening key-value bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// forget deletes a destination's consumer and scheduled-retry counter and
// purges its waiting deliveries and parked retries. What is already gone
// is not an error, so every node may run it.
func (q *queue) forget(ctx context.Context, dest string) error {
	q.updateMu.RLock()
	defer q.updateMu.RUnlock()
	s, err := q.js.Stream(ctx, StreamOut)
	if err != nil {
		return err
	}
	var errs []error
	consumers := []string{consumerName(dest), counterPrefix + dest}
	names := s.ConsumerNames(ctx)
	for name := range names.Name() {
		if rest, ok := strings.CutPrefix(name, lanePrefix+dest+"_"); ok && isDigits(rest) {
			consumers = append(consumers, name)
		}
	}
	if err := names.Err(); err != nil {
		errs = append(errs, err)
	}
	for _, c := range consumers {
		if err := q.js.DeleteConsumer(ctx, StreamOut, c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, err)
		}
	}
	for _, subj := range []string{outSubject(dest), outSubject(dest) + ".>", subjectSchedule + dest + ".>"} {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// deleteConsumer deletes a consumer of the delivery stream; one that is
// gone already is not an error.
func (q *queue) deleteConsumer(ctx context.Context, name string) error {
	q.updateMu.RLock()
	defer q.updateMu.RUnlock()
	err := q.js.DeleteConsumer(ctx, StreamOut, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	return err
}
