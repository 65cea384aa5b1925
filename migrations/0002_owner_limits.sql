-- Planetary task store, version 2: per-owner limits on live tasks, enforced where orchestrators
-- claim QUEUED tasks (`claim()` with `maxRunningPerOwner`).
--
-- A task without an owner (authentication off) counts as the owner '' (one anonymous user), so
-- both indexes are on COALESCE(owner, ''); the claim statements use the same expression.

-- claim with a limit: the distinct owners of queued tasks (a skip scan, one probe per owner)
-- and each owner's oldest queued tasks
CREATE INDEX tasks_queued_owner_idx ON tasks ((COALESCE(owner, '')), seq)
  WHERE state = 'QUEUED';
-- claim with a limit: how many live tasks an owner has (an index-only count)
CREATE INDEX tasks_live_owner_idx ON tasks ((COALESCE(owner, '')), state)
  WHERE state IN ('INITIALIZING', 'RUNNING', 'PAUSED', 'CANCELING');
