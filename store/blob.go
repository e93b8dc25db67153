package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/radtriage/radtriage/dicomio"
)

// memLimit: instances up to this size are also kept in memory while they
// are spooled, so that parsing does not read the temp file back.
const memLimit = 32 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// memBufs recycles the in-memory copies of spooled instances.
var memBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// maxPooledBuf: larger buffers are left to the garbage collector.
const maxPooledBuf = 4 << 20

// spool is one received instance in DataDir/tmp: complete and hashed;
// durable once synced returns nil. Where the kernel allows it the file is
// anonymous (O_TMPFILE): it has no name until it is linked into blobs/,
// so a crash leaves nothing behind in tmp/; path then names it through
// /proc/self/fd while f is open.
type spool struct {
	f    *os.File
	path string
	anon bool
	size int64
	sum  string // hex SHA-256
	data []byte // the bytes, when size <= memLimit
	mem  *[]byte

	syncDone chan struct{}
	syncErr  error
}

// synced waits for the temp file's fsync, which writeTemp starts so that
// it overlaps parsing.
func (sp *spool) synced() error {
	<-sp.syncDone
	return sp.syncErr
}

// release waits for the fsync, closes and (when named) removes the temp
// file, and recycles the in-memory copy. The spool is unusable afterwards.
func (sp *spool) release() {
	sp.synced()
	if sp.f != nil {
		sp.f.Close()
		sp.f = nil
		if !sp.anon {
			os.Remove(sp.path)
		}
	}
	if sp.mem != nil {
		if cap(*sp.mem) <= maxPooledBuf {
			*sp.mem = (*sp.mem)[:0]
			memBufs.Put(sp.mem)
		}
		sp.mem, sp.data = nil, nil
	}
}

// writeTemp streams r into a new temp file while hashing and counting; the
// file's fsync runs in the background (spool.synced). It stops reading as
// soon as max (when > 0) is exceeded and returns an error wrapping
// ErrTooLarge; the temp file is then already gone.
func (db *DB) writeTemp(r io.Reader, max int64) (*spool, error) {
	f, anon, err := createTemp(filepath.Join(db.dir, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("store: temp file: %w", err)
	}
	sp := &spool{f: f, path: f.Name(), anon: anon, mem: memBufs.Get().(*[]byte)}
	if anon {
		sp.path = "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	}
	fail := func(err error) (*spool, error) {
		sp.syncDone = make(chan struct{})
		close(sp.syncDone)
		sp.release()
		return nil, err
	}
	h := sha256.New()
	mem := &capBuffer{buf: *sp.mem, max: memLimit}
	lr := r
	if max > 0 {
		lr = io.LimitReader(r, max+1)
	}
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(f, h, mem), lr, *bp)
	copyBufs.Put(bp)
	if !mem.over {
		*sp.mem = mem.buf // keep the grown buffer for the pool
	}
	if err != nil {
		return fail(fmt.Errorf("store: receiving instance: %w", err))
	}
	if max > 0 && n > max {
		return fail(fmt.Errorf("store: instance larger than %d bytes: %w", max, ErrTooLarge))
	}
	sp.syncDone = make(chan struct{})
	go func() {
		defer close(sp.syncDone)
		if err := f.Sync(); err != nil {
			sp.syncErr = fmt.Errorf("store: fsync temp file: %w", err)
		}
	}()
	sp.size = n
	sp.sum = hex.EncodeToString(h.Sum(nil))
	if !mem.over {
		sp.data = mem.buf
	}
	return sp, nil
}

// capBuffer keeps what is written until it passes max, then drops it.
type capBuffer struct {
	buf  []byte
	max  int
	over bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if !c.over {
		if len(c.buf)+len(p) > c.max {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, p...)
		}
	}
	return len(p), nil
}

// checkUID validates a UID before it becomes part of a path: PS3.5 §9.1
// through dicomio, plus a local character check so that no path can come
// out of it even if the validator were lenient.
func checkUID(what, uid string) error {
	if uid == "" || len(uid) > 64 || uid[0] == '.' {
		return fmt.Errorf("invalid %s %q", what, uid)
	}
	for i := 0; i < len(uid); i++ {
		if c := uid[i]; (c < '0' || c > '9') && c != '.' {
			return fmt.Errorf("invalid %s %q", what, uid)
		}
	}
	if err := dicomio.ValidateUID(uid); err != nil {
		return fmt.Errorf("invalid %s %q: %w", what, uid, err)
	}
	return nil
}

// blobRel is the path of an instance's blob relative to the data directory.
// The UIDs must have passed checkUID.
func blobRel(study, series, sop string) string {
	return filepath.Join(studyBlobs(study), series, sop+".dcm")
}

// studyBlobs is the folder of a study's blobs, relative to the data
// directory: blobs/{study}.
func studyBlobs(study string) string { return filepath.Join("blobs", study) }

func conflictRel(sop, sum string) string {
	return filepath.Join("conflicts", sop, sum+".dcm")
}

func (db *DB) abs(rel string) string { return filepath.Join(db.dir, rel) }

// publish hard-links the spooled file to rel. The link fails with an error
// satisfying errors.Is(err, fs.ErrExist) when rel exists: a blob is never
// replaced. Directories created on the way and the final directory are
// fsynced, so the name is durable when publish returns.
func (db *DB) publish(src, rel string) error {
	if err := db.link(src, rel); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(db.abs(rel))); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// link is publish without the fsync of the final directory, which the
// caller owes before it acknowledges anything (index does it, once per
// directory for a whole group commit).
func (db *DB) link(src, rel string) error {
	dst := db.abs(rel)
	if err := mkdirSync(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return linkFile(src, dst)
}

// mkdirSync creates dir and its missing parents, fsyncing the parent of
// every directory it creates.
func mkdirSync(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// quarantine moves a blob that cannot be indexed out of blobs/ so that it
// is never served and stops blocking its SOP Instance UID; the bytes are
// kept for a human to look at.
func (db *DB) quarantine(rel, why string) error {
	dst := filepath.Join("quarantine", strconv.FormatInt(time.Now().UnixNano(), 10)+"-"+filepath.Base(rel))
	db.log.Error("quarantining blob that cannot be indexed", "path", rel, "to", dst, "reason", why)
	if err := os.Rename(db.abs(rel), db.abs(dst)); err != nil {
		return fmt.Errorf("store: quarantine %s: %w", rel, err)
	}
	if err := syncDir(filepath.Dir(db.abs(rel))); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return syncDir(db.abs("quarantine"))
}

// hashFile returns the size and hex SHA-256 of a file.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(h, f, *bp)
	copyBufs.Put(bp)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
