-- Extraction fidelity: the content type found from an attachment's magic bytes,
-- beside the sender's declared content_type (Attachment.detected_type). NULL when
-- nothing was recognised, or for rows extracted before this migration (until the
-- message is replayed).

ALTER TABLE inbound_attachment ADD COLUMN detected_content_type text;
