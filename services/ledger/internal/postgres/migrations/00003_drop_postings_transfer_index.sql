-- +goose Up
-- No query reads postings by transfer: a transfer is read from transfers,
-- an account's entries through postings_account, and transfers are never
-- deleted or re-keyed, so the foreign key needs no index on this side
-- either. The index cost two entries on every transfer for nothing.
DROP INDEX postings_transfer;

-- +goose Down
CREATE INDEX postings_transfer ON postings (transfer_id);
