package ingest

import (
	"bufio"
	"encoding/binary"
	"io"
)

// ZIP record layouts (APPNOTE.TXT 4.3.12-4.3.16).
const (
	zipDirEndLen      = 22 // end of central directory record, without its comment
	zipDir64LocLen    = 20 // ZIP64 end of central directory locator
	zipDir64EndLen    = 56 // ZIP64 end of central directory record
	zipDirHeaderLen   = 46 // central directory header, without its variable fields
	zipMaxCommentLen  = 65535
	zipDirEndSig      = 0x06054b50
	zipDir64LocSig    = 0x07064b50
	zipDir64EndSig    = 0x06064b50
	zipDirHeaderSig   = 0x02014b50
	zipDirHeaderNames = 28 // offset of the name, extra and comment lengths in a header
)

// zipEntriesOver reports whether a ZIP holds more than limit entries, judged before
// archive/zip reads it: zip.NewReader allocates every central-directory entry before a
// caller can count them, trusts the declared count only modulo 65536, and reads headers
// for as long as they follow each other. So the declared count (the ZIP64 record's when
// there is one) is checked first, then the headers are counted as archive/zip would read
// them, stopping at limit+1, with one small buffer whatever the archive declares. An
// archive whose directory cannot be found is left to zip.NewReader to refuse.
func zipEntriesOver(r io.ReaderAt, size int64, limit int) bool {
	end, endOffset, ok := zipDirEnd(r, size)
	if !ok {
		return false
	}
	declared := uint64(binary.LittleEndian.Uint16(end[10:12]))
	dirSize := uint64(binary.LittleEndian.Uint32(end[12:16]))
	dirOffset := uint64(binary.LittleEndian.Uint32(end[16:20]))
	if rec, ok := zipDir64End(r, endOffset); ok {
		declared = binary.LittleEndian.Uint64(rec[32:40])
		dirSize = binary.LittleEndian.Uint64(rec[40:48])
		dirOffset = binary.LittleEndian.Uint64(rec[48:56])
		endOffset -= zipDir64LocLen + zipDir64EndLen
	}
	if declared > uint64(limit) {
		return true
	}
	// archive/zip starts at base+dirOffset, where base accounts for data prepended to the
	// archive, or at dirOffset when a header is found there.
	start := int64(dirOffset)
	if base := endOffset - int64(dirSize) - int64(dirOffset); base > 0 && !zipHeaderAt(r, start, size) {
		start += base
	}
	if start < 0 || start >= size {
		return false
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, size-start), 64<<10)
	var h [zipDirHeaderLen]byte
	for n := 0; ; n++ {
		if n > limit {
			return true
		}
		if _, err := io.ReadFull(br, h[:]); err != nil || binary.LittleEndian.Uint32(h[:4]) != zipDirHeaderSig {
			return false
		}
		skip := int64(binary.LittleEndian.Uint16(h[zipDirHeaderNames:])) +
			int64(binary.LittleEndian.Uint16(h[zipDirHeaderNames+2:])) + int64(binary.LittleEndian.Uint16(h[zipDirHeaderNames+4:]))
		if _, err := br.Discard(int(skip)); err != nil {
			return false
		}
	}
}

// zipDirEnd finds the end of central directory record as archive/zip does: the last
// signature within the archive's final 64 kB whose comment fits in what follows it.
func zipDirEnd(r io.ReaderAt, size int64) (rec []byte, offset int64, ok bool) {
	n := min(size, zipDirEndLen+zipMaxCommentLen)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-n); err != nil && err != io.EOF {
		return nil, 0, false
	}
	for i := len(buf) - zipDirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) == zipDirEndSig &&
			i+zipDirEndLen+int(binary.LittleEndian.Uint16(buf[i+20:])) <= len(buf) {
			return buf[i : i+zipDirEndLen], size - n + int64(i), true
		}
	}
	return nil, 0, false
}

// zipDir64End reads the ZIP64 end of central directory record that the locator before
// the end record at endOffset points to, if there is one.
func zipDir64End(r io.ReaderAt, endOffset int64) ([]byte, bool) {
	if endOffset < zipDir64LocLen {
		return nil, false
	}
	var loc [zipDir64LocLen]byte
	if _, err := r.ReadAt(loc[:], endOffset-zipDir64LocLen); err != nil || binary.LittleEndian.Uint32(loc[:4]) != zipDir64LocSig {
		return nil, false
	}
	off := binary.LittleEndian.Uint64(loc[8:16])
	if off > 1<<62 {
		return nil, false
	}
	rec := make([]byte, zipDir64EndLen)
	if _, err := r.ReadAt(rec, int64(off)); err != nil || binary.LittleEndian.Uint32(rec[:4]) != zipDir64EndSig {
		return nil, false
	}
	return rec, true
}

// zipHeaderAt reports whether a central-directory header starts at off.
func zipHeaderAt(r io.ReaderAt, off, size int64) bool {
	var sig [4]byte
	if off < 0 || off+4 > size {
		return false
	}
	_, err := r.ReadAt(sig[:], off)
	return err == nil && binary.LittleEndian.Uint32(sig[:]) == zipDirHeaderSig
}
