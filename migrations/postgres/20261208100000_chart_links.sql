-- Charts linked to an account at registration (#21, hole 5). A patient the clinic registered
-- first gets the chart's id as their account id when they register with, and prove, the chart's
-- e-mail address. The clinic is told when the address is proven, and an administrator confirms
-- the link; until then the account's reads of the chart are listed in the chart's access log
-- like anyone else's (they may be someone who got hold of a mistyped address), and after it
-- they count as the patient's own.
CREATE TABLE chart_links (
    patient_id   UUID    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    linked_at    BIGINT NOT NULL,
    notified_at  BIGINT,
    confirmed_at BIGINT,
    confirmed_by UUID    REFERENCES users (id)
);
