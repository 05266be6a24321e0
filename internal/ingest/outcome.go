package ingest

// Outcome is how one committed record counts in its file's RecordCounts.
type Outcome uint8

const (
	OutcomeUnchanged Outcome = iota
	OutcomeNew
	OutcomeUpdated
)

// Add counts one record's outcome.
func (c *RecordCounts) Add(o Outcome) {
	switch o {
	case OutcomeNew:
		c.New++
	case OutcomeUpdated:
		c.Updated++
	default:
		c.Unchanged++
	}
}

// RecordOutcome is the rule every store applies to each record of a commit, in file
// order, against stored: the row held for the record's identity at that moment (nil
// when there is none), which is a row an earlier record of the same commit wrote when
// there is one. write reports whether rec replaces stored.
//
//   - nothing stored: rec is written, New;
//   - stored came from the same object version (source, key and last-modified equal):
//     an earlier record of this file (or an earlier ingestion of this very object)
//     already counted the identity, so rec is Unchanged; it is written when Newer (the
//     newest copy within a file wins, as across files);
//   - rec is Newer than stored: it is written, Updated, or Unchanged when the content
//     hashes are equal (only the origin moves to the newer copy);
//   - otherwise stored stays and rec is Unchanged (an older version is not an update).
//
// So a file counts each identity at most once as New or Updated, every other record of
// it as Unchanged, and New+Updated+Unchanged is the number of records committed. Once
// a record of the file was written for an identity, the identity's later records in the
// file are Unchanged, even one that changes the content again. (Before commits were
// streamed, a file's duplicates were first reduced to the newest, which alone was
// compared with the stored row. The counts differ only for a file holding both a copy
// identical to the stored row, from a newer object, and another version of the same
// conversation: that file now counts the identity Unchanged when the identical copy
// comes first and Updated when the other version does.)
//
// Writing identical content when its origin is newer keeps the stored row equal to the
// maximum under Newer of every record ever committed, whatever the order of files and
// of records within them.
func RecordOutcome(rec, stored *Conversation) (write bool, o Outcome) {
	switch {
	case stored == nil:
		return true, OutcomeNew
	case stored.Source == rec.Source && stored.ObjectKey == rec.ObjectKey && stored.ObjectLastModified.Equal(rec.ObjectLastModified):
		return Newer(rec, stored), OutcomeUnchanged
	case !Newer(rec, stored):
		return false, OutcomeUnchanged
	case rec.ContentHash == stored.ContentHash:
		return true, OutcomeUnchanged
	default:
		return true, OutcomeUpdated
	}
}
