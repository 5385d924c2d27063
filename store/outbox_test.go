package store

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOutboxSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	added, err := db.OutboxAdd([]OutboxMessage{
		{Channel: "mail", Created: t0, Body: []byte(`{"kind":"alarm"}`)},
		{Channel: "hook", Created: t0.Add(time.Second), Body: []byte("b")},
		{Channel: "mail", Created: t0.Add(2 * time.Second), Body: []byte("c")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if added[0].ID == 0 || added[1].ID <= added[0].ID || added[2].ID <= added[1].ID {
		t.Fatalf("ids not increasing: %d %d %d", added[0].ID, added[1].ID, added[2].ID)
	}
	if err := db.OutboxRetry(added[0].ID, 3, t0.Add(time.Minute), "dial tcp: refused"); err != nil {
		t.Fatal(err)
	}
	if err := db.OutboxRetry(999, 1, t0, "gone"); err != nil {
		t.Fatalf("retry of a missing message: %v", err)
	}
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mail, err := db.Outbox("mail")
	if err != nil {
		t.Fatal(err)
	}
	want := []OutboxMessage{
		{ID: added[0].ID, Channel: "mail", Created: t0, Attempts: 3, NextTry: t0.Add(time.Minute), LastError: "dial tcp: refused", Body: []byte(`{"kind":"alarm"}`)},
		{ID: added[2].ID, Channel: "mail", Created: t0.Add(2 * time.Second), Body: []byte("c")},
	}
	if !reflect.DeepEqual(mail, want) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", mail, want)
	}
	all, _ := db.Outbox("")
	if len(all) != 3 {
		t.Fatalf("all: %d messages, want 3", len(all))
	}
	if err := db.OutboxDelete(added[2].ID, 12345); err != nil {
		t.Fatal(err)
	}
	dropped, err := db.OutboxDropBefore(t0.Add(1500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dropped, map[string]int{"mail": 1, "hook": 1}) {
		t.Fatalf("dropped %v", dropped)
	}
	if all, _ := db.Outbox(""); len(all) != 0 {
		t.Fatalf("left %+v", all)
	}
}

func TestOutboxDamagedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	editRaw(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).Put(outboxKey(7), []byte{outboxFormat, 200})
	})
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Outbox(""); err == nil {
		t.Fatal("damaged record read without error")
	}
	dropped, err := db.OutboxDropBefore(time.Unix(0, 0))
	if err != nil || dropped[""] != 1 {
		t.Fatalf("drop damaged: %v %v", dropped, err)
	}
	if m, err := db.Outbox(""); err != nil || len(m) != 0 {
		t.Fatalf("after drop: %v %v", m, err)
	}
}

func TestOutboxRejectsHugeBody(t *testing.T) {
	db := openTemp(t)
	if _, err := db.OutboxAdd([]OutboxMessage{{Channel: "x", Body: make([]byte, maxOutboxBody+1)}}); err == nil {
		t.Fatal("huge body accepted")
	}
}
