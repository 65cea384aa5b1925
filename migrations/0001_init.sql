-- Planetary task store, version 1.
--
-- One row per task in `tasks`; `seq` orders tasks (newest first in listings, oldest first
-- when claiming) and is the keyset cursor of pagination; `id` is the opaque public id.
-- Big, rarely read values (inline input content, executor stdout/stderr, system logs) live
-- in their own columns so that BASIC views and listings never read them (TOAST stays cold).

CREATE TABLE tasks (
  seq bigserial NOT NULL,
  id text NOT NULL,
  state text NOT NULL,
  name text,
  description text,
  -- inputs (without content), outputs, resources, executors, volumes
  request jsonb NOT NULL,
  -- inline input content aligned with request->'inputs' (null entries where none), or NULL
  input_contents jsonb,
  tags jsonb NOT NULL DEFAULT '{}'::jsonb,
  owner text,
  creation_time timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  claim_owner text,
  lease_expires_at timestamptz,
  -- the current attempt
  start_time timestamptz,
  end_time timestamptz,
  -- [{start_time, end_time, exit_code}] in executor order
  executor_logs jsonb,
  -- [{stdout, stderr}] aligned with executor_logs
  executor_outputs jsonb,
  -- ["why it failed", …]
  system_logs jsonb,
  -- [{url, path, size_bytes}]
  output_logs jsonb,
  metadata jsonb,
  CONSTRAINT tasks_pkey PRIMARY KEY (id),
  CONSTRAINT tasks_seq_key UNIQUE (seq),
  CONSTRAINT tasks_state_check CHECK (state IN (
    'UNKNOWN', 'QUEUED', 'INITIALIZING', 'RUNNING', 'PAUSED', 'COMPLETE', 'EXECUTOR_ERROR',
    'SYSTEM_ERROR', 'CANCELED', 'PREEMPTED', 'CANCELING'
  ))
);

-- list ?state=X: an ordered range scan
CREATE INDEX tasks_state_seq_idx ON tasks (state, seq DESC);
-- list ?name_prefix=X (LIKE 'x%' on any collation)
CREATE INDEX tasks_name_prefix_idx ON tasks (name text_pattern_ops, seq);
-- list restricted to one owner (authentication on)
CREATE INDEX tasks_owner_seq_idx ON tasks (owner, seq DESC) WHERE owner IS NOT NULL;
-- claim: queued tasks, oldest first
CREATE INDEX tasks_queued_idx ON tasks (seq) WHERE state = 'QUEUED';
-- claim: live tasks whose lease may have expired
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at)
  WHERE state IN ('INITIALIZING', 'RUNNING', 'PAUSED', 'CANCELING');

-- One row per tag of a task, so that a tag filter is an ordered index range scan.
-- No foreign key: rows are written only with their task (same statement), and a key check per
-- tag would cost every create a lookup and a row lock on `tasks`.
CREATE TABLE task_tags (
  task_seq bigint NOT NULL,
  key text NOT NULL,
  value text NOT NULL
);
-- ?tag_key=k&tag_value=v
CREATE INDEX task_tags_key_value_seq_idx ON task_tags (key, value, task_seq DESC);
-- ?tag_key=k&tag_value= (key must exist)
CREATE INDEX task_tags_key_seq_idx ON task_tags (key, task_seq DESC);
-- Tag keys and values are strongly correlated (a value belongs to its key): without these
-- statistics the planner multiplies their selectivities and misjudges multi-tag filters.
CREATE STATISTICS task_tags_key_value_stats (mcv, dependencies) ON key, value FROM task_tags;
