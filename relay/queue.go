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
	// counterPrefix names a destination's scheduled-retry counter: a
	// consumer that is never pulled from, whose pending count is the
	// number of the destination's parked retries. The server keeps that
	// count as messages come and go, so reading it costs the same
	// whether one retry is parked or a million.
	counterPrefix = "hrs_"
)

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
	mu      sync.Mutex // guards storage
	storage QueueConfig
	srv     *server.Server // nil when external
	nc      *nats.Conn
	closing atomic.Bool
	js      jetstream.JetStream
	log     *zap.Logger
}

func openQueue(ctx context.Context, st QueueConfig, log *zap.Logger) (*queue, error) {
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
			// Room for a full fetch of large messages: a destination's
			// workers take up to twice their number of messages at once.
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

// outSubject is the subject of a destination's pending deliveries.
func outSubject(dest string) string { return subjectOut + dest }

func consumerName(dest string) string { return consumerPrefix + dest }

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
// scheduled messages; 0 when its counter does not exist yet.
func (q *queue) scheduledCount(ctx context.Context, dest string) uint64 {
	c, err := q.js.Consumer(ctx, StreamOut, counterPrefix+dest)
	if err != nil {
		return 0
	}
	return c.CachedInfo().NumPending
}

// ValidName reports whether s can name a destination: 1 to 64 characters
// of [A-Za-z0-9_-], which keeps it a single NATS subject token and a valid
// consumer name.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// SanitizeName turns any string into a valid destination name.
func SanitizeName(s string) string {
	b := make([]byte, 0, len(s))
	lastUnderscore := false
	for i := 0; i < len(s) && len(b) < 64; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b = append(b, c)
			lastUnderscore = false
		} else if !lastUnderscore && len(b) > 0 {
			b = append(b, '_')
			lastUnderscore = true
		}
	}
	out := strings.TrimRight(string(b), "_")
	if out == "" {
		return "destination"
	}
	return out
}

func headerInt(h nats.Header, key string) int {
	n, _ := strconv.Atoi(h.Get(key))
	if n < 0 {
		return 0
	}
	return n
}

// natsLogger sends the embedded server's log lines to zap.
type natsLogger struct{ l *zap.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  {}
