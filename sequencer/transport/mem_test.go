package transport

import (
	"testing"
)

func TestMemNetwork(t *testing.T) {
	n := NewMemNetwork(3, 2)
	a, b, c := n.Endpoint(0), n.Endpoint(1), n.Endpoint(2)
	buf := []byte("vote")
	a.Send(1, buf)
	buf[0] = 'X' // the sender may reuse its buffer after Send
	if m := <-b.Recv(); m.From != 0 || string(m.Data) != "vote" {
		t.Fatalf("got %+v", m)
	}
	// A full inbox drops and counts.
	a.Send(2, []byte{1})
	a.Send(2, []byte{2})
	a.Send(2, []byte{3})
	if got := a.Metrics().DroppedQueueFull.Load(); got != 1 {
		t.Fatalf("DroppedQueueFull = %d", got)
	}
	<-c.Recv()
	<-c.Recv()
	// A cut link drops; restoring it delivers again.
	n.SetLink(0, 2, false)
	a.Send(2, []byte("lost"))
	b.Send(2, []byte("via b"))
	if m := <-c.Recv(); string(m.Data) != "via b" {
		t.Fatalf("got %q through a cut link", m.Data)
	}
	n.SetLink(0, 2, true)
	a.Send(2, []byte("back"))
	if m := <-c.Recv(); string(m.Data) != "back" {
		t.Fatalf("got %q", m.Data)
	}
	n.Isolate(1, true)
	a.Send(1, []byte("x"))
	b.Send(0, []byte("y"))
	select {
	case m := <-b.Recv():
		t.Fatalf("isolated node received %+v", m)
	case m := <-a.Recv():
		t.Fatalf("isolated node's message arrived: %+v", m)
	default:
	}
	a.Send(0, []byte("self"))
	if got := a.Metrics().DroppedInvalid.Load(); got != 1 {
		t.Fatalf("DroppedInvalid = %d", got)
	}
	// Close ends Recv; sends to a closed endpoint are dropped.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, ok := <-c.Recv(); ok {
		t.Fatal("Recv open after Close")
	}
	a.Send(2, []byte("to closed"))
	c.Send(0, []byte("from closed"))
}

func TestOutQueueEvictsOldestByCountAndBytes(t *testing.T) {
	q := newOutQueue(3, 10)
	for i := byte(0); i < 5; i++ {
		q.push([]byte{i})
	}
	if d, _ := q.pop(); d[0] != 2 {
		t.Fatalf("oldest kept = %d, want 2", d[0])
	}
	q = newOutQueue(100, 10)
	q.push(make([]byte, 6))
	q.push(make([]byte, 3))
	if ev := q.push(make([]byte, 4)); ev != 1 {
		t.Fatalf("byte bound evicted %d, want 1", ev)
	}
	if q.len() != 2 || q.bytes != 7 {
		t.Fatalf("len=%d bytes=%d", q.len(), q.bytes)
	}
	for q.len() > 0 {
		q.pop()
	}
	if _, ok := q.pop(); ok || q.bytes != 0 {
		t.Fatal("empty queue popped")
	}
}
