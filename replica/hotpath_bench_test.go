package replica

import (
	"encoding/json"
	"testing"
)

func BenchmarkSplitBatch(b *testing.B) {
	bodies, _ := benchStream(b)
	b.Run("split", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := splitBatch(bodies[i%len(bodies)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var raws []json.RawMessage
			if err := json.Unmarshal(bodies[i%len(bodies)], &raws); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("valid", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			json.Valid(bodies[i%len(bodies)])
		}
	})
}

func BenchmarkWireOrder(b *testing.B) {
	bodies, _ := benchStream(b)
	ops, err := DecodeBatch(testDomain(), bodies[0])
	if err != nil {
		b.Fatal(err)
	}
	op := ops[0].Op
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op.Wire()
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op.wireJSON()
		}
	})
}
