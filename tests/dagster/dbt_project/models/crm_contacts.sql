-- One row per contact, as the contacts sync reads it.
select
    contact_id,
    email,
    first_name,
    last_name,
    updated_at
from {{ source('raw', 'contacts') }}
