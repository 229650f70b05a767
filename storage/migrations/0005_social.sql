-- Social: friendships, groups and their members, notifications, chat history.
-- Portable SQL (SQLite and PostgreSQL); ids are TEXT, times unix milliseconds, booleans 0/1
-- integers so both engines read them the same way. No foreign keys to players: the service
-- checks that a friend exists, and erasing a player must not be blocked by social rows.

-- One row per direction: `player_id` asked `friend_id` (pending), they are friends (accepted),
-- or `player_id` blocked `friend_id` (blocked).
CREATE TABLE friendships (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    friend_id TEXT NOT NULL,
    status TEXT NOT NULL,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX friendships_pair ON friendships (player_id, friend_id);
CREATE INDEX friendships_friend ON friendships (friend_id);

CREATE TABLE social_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    max_members BIGINT NOT NULL,
    open INTEGER NOT NULL,
    creator_id TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL,
    player_id TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, player_id)
);
CREATE INDEX group_members_player ON group_members (player_id);

-- `delivered`: pushed to a live session; the rest are pushed on the player's next connect.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '{}',
    read INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    sent_at BIGINT NOT NULL
);
CREATE INDEX notifications_player ON notifications (player_id, sent_at DESC, id DESC);

CREATE TABLE chat_messages (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    content TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);
CREATE INDEX chat_messages_channel ON chat_messages (channel_id, sent_at DESC, id DESC);
