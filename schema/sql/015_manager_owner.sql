-- 015_manager_owner.sql -- who among the managers has a customer's chat.
-- The first manager to answer a hand-off owns the chat (mode 'manager');
-- another manager's answer is refused and the group is told who owns it.
-- Kept on the conversation so a restart keeps it; cleared when the chat
-- goes back to the bot. owner: the manager's id on the managers' channel
-- (a Telegram user id), owner_name: their display name for the notes.
ALTER TABLE conversations ADD COLUMN owner TEXT;
ALTER TABLE conversations ADD COLUMN owner_name TEXT;
