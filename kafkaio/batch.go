package kafkaio

import (
	"encoding/binary"
	"hash/crc32"
	"sync"
)

// Record batches are encoded here rather than by kafka-go's generic
// encoder, which goes through an io.Reader per key and value and a paged
// buffer: a produce request's records are written straight into one
// pooled buffer, as Kafka's own producer does, and kafka-go sends it
// (kafka.Client.RawProduce). The format is Kafka's record batch v2, without
// compression, producer id or transaction:
// https://kafka.apache.org/documentation/#recordbatch in Kafka's docs.

// batchHeader is the bytes of a record batch before its first record.
const batchHeader = 61

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchPool holds encoding buffers; a buffer larger than a request's
// bound is not kept.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// appendBatch appends recs, as one record batch, to dst. A record with a
// zero Time gets now (milliseconds since the epoch), as kafka-go's
// encoder does. recs must not be empty.
func appendBatch(dst []byte, recs []Record, now int64) []byte {
	start := len(dst)
	ts := func(r *Record) int64 {
		if r.Time.IsZero() {
			return now
		}
		return r.Time.UnixMilli()
	}
	first := ts(&recs[0])
	maxTS := first
	var h [batchHeader]byte
	dst = append(dst, h[:]...)
	for i := range recs {
		r := &recs[i]
		t := ts(r)
		maxTS = max(maxTS, t)
		size := 1 + varintLen(t-first) + varintLen(int64(i)) + bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
		for _, hd := range r.Headers {
			size += varintLen(int64(len(hd.Key))) + len(hd.Key) + bytesLen(hd.Value)
		}
		dst = binary.AppendVarint(dst, int64(size))
		dst = append(dst, 0) // attributes
		dst = binary.AppendVarint(dst, t-first)
		dst = binary.AppendVarint(dst, int64(i))
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for _, hd := range r.Headers {
			dst = binary.AppendVarint(dst, int64(len(hd.Key)))
			dst = append(dst, hd.Key...)
			dst = appendBytes(dst, hd.Value)
		}
	}
	b := dst[start:]
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)                    // base offset: the broker's
	be.PutUint32(b[8:], uint32(len(b)-12))    // batch length: what follows it
	be.PutUint32(b[12:], 0xffffffff)          // partition leader epoch: -1
	b[16] = 2                                 // magic
	be.PutUint16(b[21:], 0)                   // attributes: no compression, create time
	be.PutUint32(b[23:], uint32(len(recs)-1)) // last offset delta
	be.PutUint64(b[27:], uint64(first))
	be.PutUint64(b[35:], uint64(maxTS))
	be.PutUint64(b[43:], 0xffffffffffffffff) // producer id: -1
	be.PutUint16(b[51:], 0xffff)             // producer epoch: -1
	be.PutUint32(b[53:], 0xffffffff)         // base sequence: -1
	be.PutUint32(b[57:], uint32(len(recs)))
	be.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return dst
}

// appendBytes appends a nullable byte string: its length as a varint (-1
// for nil), then its bytes.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// varintLen is the size of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
