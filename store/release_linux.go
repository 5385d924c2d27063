package store

import (
	"fmt"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// ReleasePages takes the store's file pages out of this process's resident
// set. Reading the store (the start's restore reads every ban, a full scan
// every record) leaves each page it touched mapped, and counted in the
// daemon's RSS, for as long as the store is open; an idle bansd reads
// almost nothing, so they are only weight.
//
// It is madvise(MADV_DONTNEED) over the mapped data, and safe because
// bbolt maps the file PROT_READ and MAP_SHARED: there is no private or
// dirty page to lose, the pages stay in the page cache, and the next read
// faults them back in, unchanged. Every write goes through the file, not
// the mapping.
//
// The one hazard is a remap: a write transaction that outgrows the mapping
// unmaps it and maps the file again, perhaps at another address, and
// advice given over the old range could then drop memory that is not the
// store's. bbolt remaps only under its mmap lock, which every read
// transaction holds (shared) from its start to its end, so the advice is
// given inside one: the mapping it reads is the one advised. Its length is
// the transaction's view of the file (the high-water page times the page
// size), within the mapping by bbolt's own invariant (it maps at least
// that much before it hands out a page), and every page ever read lies
// below it.
func (db *DB) ReleasePages() error {
	return db.view(func(tx *bolt.Tx) error {
		start := db.bolt.Info().Data
		page := uintptr(os.Getpagesize())
		// The mapping starts on a page; its last page may be partly the
		// file's (the kernel maps whole pages).
		length := (uintptr(tx.Size()) + page - 1) &^ (page - 1)
		if length == 0 {
			return nil
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, length, syscall.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("release pages: madvise: %w", errno)
		}
		return nil
	})
}
