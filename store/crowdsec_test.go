package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

func scanAll(t *testing.T, q *CrowdSecQueue) map[uint64]string {
	t.Helper()
	got := map[uint64]string{}
	if err := q.Scan(func(seq uint64, data []byte) error { got[seq] = string(data); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestCrowdSecQueueSurvivesReopenAndDropsOldest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	q := db.CrowdSecQueue(3)
	var seqs []uint64
	for i := range 3 {
		seq, dropped, err := q.Append([]byte(fmt.Sprint("e", i)))
		if err != nil || len(dropped) != 0 {
			t.Fatalf("append %d: seq %d dropped %v err %v", i, seq, dropped, err)
		}
		seqs = append(seqs, seq)
	}
	if err := q.Replace(seqs[1], []byte("e1-sent")); err != nil {
		t.Fatal(err)
	}
	seq4, dropped, err := q.Append([]byte("e3"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dropped, []uint64{seqs[0]}) {
		t.Errorf("dropped %v, want the oldest %d", dropped, seqs[0])
	}
	if err := q.Delete(seqs[2]); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(seqs[2]); err != nil {
		t.Errorf("deleting a gone entry: %v", err)
	}
	if err := q.Replace(seqs[0], []byte("x")); !errors.Is(err, ErrNoEntry) {
		t.Errorf("replace of a dropped entry: %v, want ErrNoEntry", err)
	}
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q = db.CrowdSecQueue(3)
	want := map[uint64]string{seqs[1]: "e1-sent", seq4: "e3"}
	if got := scanAll(t, q); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen: %v, want %v", got, want)
	}
	// Sequence numbers keep growing across a reopen: order is arrival.
	seq5, _, err := q.Append([]byte("e4"))
	if err != nil || seq5 <= seq4 {
		t.Errorf("seq after reopen %d (err %v), want > %d", seq5, err, seq4)
	}
}

func TestCrowdSecQueueBoundHolds(t *testing.T) {
	q := openTemp(t).CrowdSecQueue(100)
	total := 0
	for i := range 1000 {
		_, dropped, err := q.Append([]byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		total += len(dropped)
	}
	got := scanAll(t, q)
	if len(got) != 100 || total != 900 {
		t.Fatalf("%d entries kept, %d dropped; want 100 and 900", len(got), total)
	}
	for _, v := range got {
		var n int
		fmt.Sscan(v, &n)
		if n < 900 {
			t.Errorf("entry %q kept, but it is older than the newest 100", v)
		}
	}
	if _, _, err := q.Append(make([]byte, maxString+1)); err == nil {
		t.Error("an oversized entry was accepted")
	}
}
