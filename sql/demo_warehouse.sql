-- Demo warehouse (SQLite): the source tables of the demo syncs.
-- Company ids and team members are those of the demo business (docs/architecture.md).

DROP TABLE IF EXISTS crm_contacts;
CREATE TABLE crm_contacts (
    contact_id    INTEGER PRIMARY KEY,
    email         TEXT NOT NULL,
    first_name    TEXT,
    last_name     TEXT,
    mobile_phone  TEXT,
    birthday      TEXT,
    email_status  TEXT,
    tags          TEXT,
    company_id    TEXT,
    timezone      TEXT,
    updated_at    TEXT NOT NULL
);

INSERT INTO crm_contacts VALUES
 (1,  'ada.lovelace@example.com',   'Ada',     'Lovelace',  '(312) 555-0100',  '1990-12-10', 'Opted In',               'VIP,Newsletter',     '7f1e2d3c-0000-4000-8000-000000000001', 'America/Chicago',     '2024-03-01 09:00:00'),
 (2,  'grace.hopper@example.com',   'Grace',   'Hopper',    '+13125550101',    '1986-12-09', 'Opted In',               'Newsletter',         '7f1e2d3c-0000-4000-8000-000000000001', 'America/New_York',    '2024-03-01 09:05:00'),
 (3,  'alan.turing@example.com',    'Alan',    'Turing',    '312.555.0102',    '1992-06-23', 'Not Opted In',           'Beta',               '7f1e2d3c-0000-4000-8000-000000000002', 'Europe/London',       '2024-03-01 09:10:00'),
 (4,  'katherine.j@example.com',    'Katherine','Johnson',  '312-555-0103',    '1988-08-26', 'Opted In',               'VIP',                '7f1e2d3c-0000-4000-8000-000000000003', 'America/New_York',    '2024-03-02 10:00:00'),
 (5,  'linus.t@example.com',        'Linus',   'Torvalds',  '+14155550104',    NULL,         'Unsubscribed From All',  NULL,                 NULL,                                   'America/Los_Angeles', '2024-03-02 10:30:00'),
 (6,  'margaret.h@example.com',     'Margaret','Hamilton',  '(415) 555-0105',  '1985-08-17', 'Opted In',               'Partner,VIP',        '7f1e2d3c-0000-4000-8000-000000000002', 'America/Los_Angeles', '2024-03-03 08:00:00'),
 (7,  'dennis.r@example.com',       'Dennis',  'Ritchie',   '415 555 0106',    '1991-09-09', 'Not Opted In',           'Churn Risk',         '7f1e2d3c-0000-4000-8000-000000000003', 'America/Denver',      '2024-03-03 08:15:00'),
 (8,  'barbara.l@example.com',      'Barbara', 'Liskov',    '+16175550107',    '1989-11-07', 'Opted In',               'Newsletter,Beta',    '7f1e2d3c-0000-4000-8000-000000000001', 'America/New_York',    '2024-03-04 12:00:00'),
 (9,  'ken.t@example.com',          'Ken',     'Thompson',  '(617) 555-0108',  NULL,         'Suppression List',       NULL,                 NULL,                                   'America/New_York',    '2024-03-04 12:30:00'),
 (10, 'frances.a@example.com',      'Frances', 'Allen',     '617.555.0109',    '1987-08-04', 'Opted In',               'VIP,Partner',        '7f1e2d3c-0000-4000-8000-000000000002', 'America/Chicago',     '2024-03-05 14:00:00'),
 (11, 'edsger.d@example.com',       'Edsger',  'Dijkstra',  '+31205550110',    '1990-05-11', 'Not Opted In',           'Beta',               NULL,                                   'Europe/Amsterdam',    '2024-03-05 14:20:00'),
 (12, 'radia.p@example.com',        'Radia',   'Perlman',   '(206) 555-0111',  '1993-12-18', 'Opted In',               'Newsletter',         '7f1e2d3c-0000-4000-8000-000000000003', 'America/Los_Angeles', '2024-03-06 09:00:00'),
 (13, 'donald.k@example.com',       'Donald',  'Knuth',     '206-555-0112',    '1984-01-10', 'Opted In',               'Partner',            '7f1e2d3c-0000-4000-8000-000000000001', 'America/Los_Angeles', '2024-03-06 09:45:00'),
 (14, 'hedy.l@example.com',         'Hedy',    'Lamarr',    '+13105550113',    '1994-11-09', 'Opted In',               'VIP,Newsletter,Beta','7f1e2d3c-0000-4000-8000-000000000002', 'America/Los_Angeles', '2024-03-07 11:00:00'),
 (15, 'john.m@example.com',         'John',    'McCarthy',  '310.555.0114',    NULL,         'Not Opted In',           'Churn Risk',         NULL,                                   'America/Chicago',     '2024-03-07 11:30:00'),
 (16, 'annie.e@example.com',        'Annie',   'Easley',    '(216) 555-0115',  '1989-04-23', 'Opted In',               'Newsletter',         '7f1e2d3c-0000-4000-8000-000000000003', 'America/New_York',    '2024-03-08 15:00:00'),
 (17, 'tim.bl@example.com',         'Tim',     'Berners-Lee','+442075550116',  '1991-06-08', 'Unsubscribed From All',  NULL,                 '7f1e2d3c-0000-4000-8000-000000000001', 'Europe/London',       '2024-03-08 15:10:00'),
 (18, 'shafi.g@example.com',        'Shafi',   'Goldwasser','216-555-0117',    '1992-11-14', 'Opted In',               'VIP',                '7f1e2d3c-0000-4000-8000-000000000002', 'America/New_York',    '2024-03-09 10:00:00'),
 (19, 'vint.c@example.com',         'Vint',    'Cerf',      '(703) 555-0118',  '1986-06-23', 'Opted In',               'Partner,Newsletter', NULL,                                   'America/New_York',    '2024-03-09 10:20:00'),
 (20, 'joan.c@example.com',         'Joan',    'Clarke',    '+17035550119',    '1990-06-24', 'Not Opted In',           'Beta,Churn Risk',    '7f1e2d3c-0000-4000-8000-000000000003', 'Europe/London',       '2024-03-10 13:00:00'),
 (21, 'bjarne.s@example.com',       'Bjarne',  'Stroustrup','703.555.0120',    '1988-12-30', 'Opted In',               'Newsletter',         '7f1e2d3c-0000-4000-8000-000000000001', 'America/New_York',    '2024-03-10 13:30:00'),
 (22, 'sophie.w@example.com',       'Sophie',  'Wilson',    '(512) 555-0121',  '1987-06-01', 'Opted In',               'VIP,Partner',        '7f1e2d3c-0000-4000-8000-000000000002', 'America/Chicago',     '2024-03-11 09:00:00'),
 (23, 'guido.r@example.com',        'Guido',   'Rossum',    '+15125550122',    NULL,         'Suppression List',       NULL,                 NULL,                                   'Europe/Amsterdam',    '2024-03-11 09:15:00'),
 (24, 'lynn.c@example.com',         'Lynn',    'Conway',    '512-555-0123',    '1993-01-02', 'Opted In',               'Beta',               '7f1e2d3c-0000-4000-8000-000000000003', 'America/Los_Angeles', '2024-03-12 16:00:00'),
 (25, 'whitfield.d@example.com',    'Whitfield','Diffie',   '(650) 555-0124',  '1985-06-05', 'Not Opted In',           'Newsletter,Churn Risk','7f1e2d3c-0000-4000-8000-000000000001','America/Los_Angeles', '2024-03-12 16:30:00');

DROP TABLE IF EXISTS crm_accounts;
CREATE TABLE crm_accounts (
    account_id         INTEGER PRIMARY KEY,
    name               TEXT NOT NULL,
    owner_id           TEXT,
    description        TEXT,
    billing_email      TEXT,
    phone              TEXT,
    employees          INTEGER,
    health_score       DECIMAL(5, 2),
    annual_revenue     DECIMAL(14, 2),
    renewal_date       TEXT,
    last_contacted     TEXT,
    active             INTEGER NOT NULL DEFAULT 1,
    tier               TEXT,
    region             TEXT,
    segment            TEXT,
    lifecycle          TEXT,
    referenceable      TEXT,
    satisfaction       INTEGER,
    account_timezone   TEXT,
    products           TEXT,
    labels             TEXT,
    primary_company_id TEXT,
    updated_at         TEXT NOT NULL
);

INSERT INTO crm_accounts VALUES
 (1,  'Acme Corp Renewal',      '916dac1b-5640-4268-9324-06132f342488', 'Flagship account; annual renewal.', 'billing@acme.example',     '(312) 555-0200', 1200, 87.50, 2500000.00, '2024-12-31', '2024-03-01 15:30:00', 1, 'Gold',   'North', 'Enterprise', 'Active',     'Yes',   5, 'America/Chicago',     'Core,Analytics,Support',      'Strategic,Renewal',  '7f1e2d3c-0000-4000-8000-000000000001', '2024-03-01 16:00:00'),
 (2,  'Acme Corp Analytics',    '2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f', 'Analytics upsell in progress.',     'ap@acme.example',          '+13125550201',    1200, 72.25, 350000.00,  '2025-03-31', '2024-02-20 10:00:00', 1, 'Silver', 'North', 'Enterprise', 'Onboarding', 'Maybe', 4, 'America/Chicago',     'Analytics',                   'Expansion',          '7f1e2d3c-0000-4000-8000-000000000001', '2024-03-02 09:00:00'),
 (3,  'Globex Platform',        '916dac1b-5640-4268-9324-06132f342488', 'Platform licence, three regions.',  'finance@globex.example',   '(415) 555-0202',  800,  64.00, 1800000.00, '2024-09-30', '2024-01-15 08:45:00', 1, 'Gold',   'West',  'Enterprise', 'Active',     'Yes',   4, 'America/Los_Angeles', 'Core,Integrations',           'Strategic',          '7f1e2d3c-0000-4000-8000-000000000002', '2024-03-02 11:00:00'),
 (4,  'Globex Support Plan',    '2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f', NULL,                                'support@globex.example',   '415-555-0203',    800,  41.75, 120000.00,  '2024-06-30', '2023-12-01 17:00:00', 1, 'Bronze', 'West',  'Mid-Market', 'Active',     'No',    2, 'America/Los_Angeles', 'Support',                     'At Risk,Renewal',    '7f1e2d3c-0000-4000-8000-000000000002', '2024-03-03 12:00:00'),
 (5,  'Initech Core',           '916dac1b-5640-4268-9324-06132f342488', 'TPS report automation.',            'billing@initech.example',  '(512) 555-0204',  150,  55.10, 90000.00,   '2025-01-15', '2024-02-28 13:20:00', 1, 'Silver', 'South', 'SMB',        'Active',     'Maybe', 3, 'America/Chicago',     'Core',                        'Renewal',            '7f1e2d3c-0000-4000-8000-000000000003', '2024-03-04 08:00:00'),
 (6,  'Initech Integrations',   '2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f', 'Connector for the legacy ERP.',     'it@initech.example',       '+15125550205',    150,  38.00, 45000.00,   '2024-08-01', NULL,                  0, 'Bronze', 'South', 'SMB',        'Churned',    'No',    1, 'America/Chicago',     'Integrations',                'At Risk',            '7f1e2d3c-0000-4000-8000-000000000003', '2024-03-04 09:30:00'),
 (7,  'Acme Corp EMEA',         '916dac1b-5640-4268-9324-06132f342488', 'European subsidiary.',              'emea@acme.example',        '+442075550206',   300,  80.00, 640000.00,  '2025-02-28', '2024-03-05 09:00:00', 1, 'Gold',   'East',  'Enterprise', 'Active',     'Yes',   5, 'Europe/London',       'Core,Analytics,Integrations', 'Strategic,Expansion','7f1e2d3c-0000-4000-8000-000000000001', '2024-03-05 10:00:00'),
 (8,  'Globex Labs',            '2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f', 'Research pilot.',                   'labs@globex.example',      '(650) 555-0207',  40,   66.60, 25000.50,   '2024-11-11', '2024-02-02 16:40:00', 1, 'Silver', 'West',  'SMB',        'Onboarding', 'Maybe', 3, 'America/Los_Angeles', 'Analytics,Support',           'Expansion',          '7f1e2d3c-0000-4000-8000-000000000002', '2024-03-06 14:00:00'),
 (9,  'Initech Analytics',      '916dac1b-5640-4268-9324-06132f342488', NULL,                                NULL,                       NULL,              150,  NULL,  NULL,       NULL,         NULL,                  1, NULL,     NULL,    NULL,         'Onboarding', NULL,    NULL, NULL,               NULL,                          NULL,                 '7f1e2d3c-0000-4000-8000-000000000003', '2024-03-07 08:00:00'),
 (10, 'Acme Corp Training',     '2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f', 'Onsite training days.',             'training@acme.example',    '312.555.0209',    1200, 90.00, 60000.00,   '2024-10-01', '2024-03-07 11:11:11', 1, 'Bronze', 'North', 'Mid-Market', 'Active',     'Yes',   5, 'America/New_York',    'Support',                     'Renewal',            '7f1e2d3c-0000-4000-8000-000000000001', '2024-03-08 09:00:00'),
 (11, 'Globex Mid-Market Pilot','916dac1b-5640-4268-9324-06132f342488', 'Pilot in the mid-market segment.',  'pilot@globex.example',     '+16505550210',    220,  59.95, 150000.00,  '2025-05-20', '2024-01-30 07:30:00', 1, 'Silver', 'East',  'Mid-Market', 'Active',     'No',    3, 'America/New_York',    'Core,Support',                'At Risk',            '7f1e2d3c-0000-4000-8000-000000000002', '2024-03-09 12:00:00'),
 (12, 'Initech Enterprise Deal','2b7c6f0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f', 'Multi-year enterprise agreement.',  'deals@initech.example',    '(512) 555-0211',  150,  70.40, 980000.00,  '2026-01-01', '2024-03-10 10:10:00', 1, 'Gold',   'South', 'Enterprise', 'Active',     'Yes',   4, 'America/Chicago',     'Core,Analytics,Integrations,Support', 'Strategic,Expansion,Renewal', '7f1e2d3c-0000-4000-8000-000000000003', '2024-03-10 11:00:00');
