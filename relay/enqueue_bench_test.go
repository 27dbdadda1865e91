package relay

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/testutil"
	"github.com/hookrelay/hookrelay/relay/ave"
	"github.com/hookrelay/hookrelay/relay/event"
)

// benchEvent is the normalized event of a one-guide Aveonline request
// (about 600 bytes), the durable ingress path's usual load.
func benchEvent(b *testing.B) event.Event {
	b.Helper()
	tracks, err := ave.Normalize(testutil.AvePayload("guia-1"), ave.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ev, err := tracks[0].Event("shipments/tracking", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return ev
}

// BenchmarkEnqueueEach stores one normalized event for one destination
// per operation in an embedded JetStream, waiting for the acknowledgement
// as ingress does before it answers 201. Each operation's event has its
// own id, so that nothing is dropped as a duplicate.
//
//	go test -run '^$' -bench '^BenchmarkEnqueueEach$' -benchmem ./relay/
func BenchmarkEnqueueEach(b *testing.B) {
	e, err := Open(Options{Queue: QueueConfig{Dir: b.TempDir()}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	ev := benchEvent(b)
	base := ev.ID[:len(ev.ID)-8]
	events := []event.Event{ev}
	dests := [][]string{{"erp"}}
	ctx := context.Background()
	ids := make([]string, 0, 1<<16)
	for i := range cap(ids) {
		// 8 base-36 digits: 36^7 is "10000000".
		ids = append(ids, base+strconv.FormatInt(78364164096+int64(i), 36))
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		// The ids are made beforehand; past them, resends are
		// deduplicated (acknowledged without being stored again).
		events[0].ID = ids[i%len(ids)]
		i++
		if err := e.EnqueueEach(ctx, events, dests); err != nil {
			b.Fatal(err)
		}
	}
}
