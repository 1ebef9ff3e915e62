//! Word pools for generated demo data, with a Scandinavian flavour.

pub const FIRST_NAMES: &[&str] = &[
    "Anna",
    "Anders",
    "Astrid",
    "Bjørn",
    "Birgitte",
    "Camilla",
    "Christian",
    "Dag",
    "Eirik",
    "Elin",
    "Emil",
    "Erik",
    "Frida",
    "Geir",
    "Hanne",
    "Hans",
    "Helle",
    "Henrik",
    "Ida",
    "Ingrid",
    "Jakob",
    "Jens",
    "Johan",
    "Jonas",
    "Karin",
    "Kari",
    "Kristian",
    "Kjersti",
    "Lars",
    "Lene",
    "Linnea",
    "Magnus",
    "Maja",
    "Marius",
    "Mette",
    "Morten",
    "Nils",
    "Nora",
    "Ola",
    "Ole",
    "Per",
    "Pernille",
    "Rune",
    "Sara",
    "Sigrid",
    "Siri",
    "Solveig",
    "Stian",
    "Svein",
    "Thomas",
    "Tone",
    "Tor",
    "Trine",
    "Ulf",
    "Vegard",
    "Vibeke",
    "Åsa",
    "Øystein",
];

pub const LAST_NAMES: &[&str] = &[
    "Andersen",
    "Bakken",
    "Berg",
    "Dahl",
    "Eriksen",
    "Fredriksen",
    "Haugen",
    "Hansen",
    "Holm",
    "Jensen",
    "Johansson",
    "Karlsson",
    "Kristiansen",
    "Larsen",
    "Lie",
    "Lund",
    "Lindqvist",
    "Moen",
    "Nielsen",
    "Nilsen",
    "Nyberg",
    "Olsen",
    "Pedersen",
    "Persson",
    "Rasmussen",
    "Solberg",
    "Strand",
    "Svensson",
    "Sæther",
    "Thomassen",
    "Vik",
    "Wold",
    "Ødegaard",
    "Aasen",
];

/// Place-like words used in company names.
pub const PLACE_WORDS: &[&str] = &[
    "Fjord", "Fjell", "Nordlys", "Vest", "Øst", "Sør", "Nord", "Havbris", "Skog", "Elv", "Bre",
    "Vik", "Dal", "Holm", "Strand", "Polar", "Midnatt", "Kyst",
];

/// Trades used in company names.
pub const TRADES: &[&str] = &[
    "Bygg",
    "Elektro",
    "Rør",
    "Transport",
    "Data",
    "Regnskap",
    "Maskin",
    "Eiendom",
    "Handel",
    "Consult",
    "Marine",
    "Trevare",
    "Catering",
    "Maling",
    "Design",
    "Logistikk",
    "Fisk",
    "Auto",
];

pub const JOB_TITLES: &[&str] = &[
    "Sales Manager",
    "Account Manager",
    "Accountant",
    "Project Manager",
    "Warehouse Manager",
    "Purchaser",
    "Consultant",
    "Customer Service",
    "Service Technician",
    "Office Manager",
];

pub const CONTACT_TITLES: &[&str] = &[
    "CEO",
    "CFO",
    "Purchasing Manager",
    "Daily Manager",
    "Accountant",
    "Project Lead",
    "Office Manager",
    "Technical Manager",
    "Owner",
];

/// A country with its usual legal suffix, web domain, phone prefix and
/// some (postcode, city) pairs.
pub struct Country {
    pub name: &'static str,
    pub suffix: &'static str,
    pub tld: &'static str,
    pub phone_prefix: &'static str,
    pub places: &'static [(&'static str, &'static str)],
}

pub const NORWAY: Country = Country {
    name: "Norway",
    suffix: "AS",
    tld: "no",
    phone_prefix: "+47",
    places: &[
        ("0155", "Oslo"),
        ("0450", "Oslo"),
        ("5003", "Bergen"),
        ("7010", "Trondheim"),
        ("4006", "Stavanger"),
        ("9008", "Tromsø"),
        ("3015", "Drammen"),
        ("4610", "Kristiansand"),
        ("6002", "Ålesund"),
        ("8006", "Bodø"),
        ("2317", "Hamar"),
        ("1607", "Fredrikstad"),
    ],
};

pub const SWEDEN: Country = Country {
    name: "Sweden",
    suffix: "AB",
    tld: "se",
    phone_prefix: "+46",
    places: &[
        ("111 52", "Stockholm"),
        ("411 06", "Göteborg"),
        ("211 20", "Malmö"),
        ("753 20", "Uppsala"),
        ("903 26", "Umeå"),
    ],
};

pub const DENMARK: Country = Country {
    name: "Denmark",
    suffix: "ApS",
    tld: "dk",
    phone_prefix: "+45",
    places: &[
        ("1050", "København K"),
        ("8000", "Aarhus C"),
        ("5000", "Odense C"),
        ("9000", "Aalborg"),
    ],
};

pub const STREETS: &[&str] = &[
    "Storgata",
    "Kirkegata",
    "Industriveien",
    "Strandveien",
    "Parkveien",
    "Sjøgata",
    "Havnegata",
    "Skolegata",
    "Drammensveien",
    "Kongens gate",
    "Bryggen",
    "Fjordveien",
    "Lilla Torget",
    "Nygatan",
];

/// (item, unit, lowest price, highest price) in whole currency units.
pub const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("Office chair", "pcs", 1_200, 6_500),
    ("Desk", "pcs", 2_500, 12_000),
    ("Filing cabinet", "pcs", 900, 3_500),
    ("Consulting", "hour", 950, 1_650),
    ("Installation work", "hour", 650, 1_100),
    ("Electrician", "hour", 700, 1_200),
    ("Copy paper A4", "box", 250, 450),
    ("Toner cartridge", "pcs", 600, 2_400),
    ("Laptop", "pcs", 8_000, 28_000),
    ("Monitor 27\"", "pcs", 2_200, 7_500),
    ("Network cable", "m", 8, 40),
    ("Cable tray", "m", 90, 300),
    ("Timber 48x98", "m", 25, 60),
    ("Paint", "l", 120, 450),
    ("Salmon fillet", "kg", 140, 260),
    ("Freight", "pcs", 150, 2_500),
    ("Service agreement", "month", 500, 5_000),
    ("Software licence", "pcs", 400, 9_000),
];

/// Model names that make product names distinct.
pub const PRODUCT_MODELS: &[&str] = &[
    "Basic", "Pro", "Fjell", "Fjord", "Nord", "Kyst", "Plus", "Max", "Lett", "Classic", "Eco",
    "Premium",
];

pub const PROJECT_KINDS: &[&str] = &[
    "Office refit",
    "New warehouse",
    "ERP rollout",
    "Network upgrade",
    "Annual service",
    "Shop fitting",
    "Website relaunch",
    "Fleet renewal",
    "Roof repair",
    "Trade fair stand",
];

/// (activity kind, subjects of that kind).
pub const ACTIVITIES: &[(&str, &[&str])] = &[
    (
        "call",
        &[
            "Follow-up call about quote",
            "Call about overdue invoice",
            "Phone call: delivery date",
            "Called about product question",
        ],
    ),
    (
        "meeting",
        &[
            "Annual customer review",
            "Project start-up meeting",
            "Product demonstration",
            "Contract negotiation",
        ],
    ),
    (
        "email",
        &[
            "Sent price list",
            "Sent order confirmation",
            "Answered complaint",
            "Sent documentation",
        ],
    ),
    (
        "task",
        &[
            "Prepare quote",
            "Check credit rating",
            "Update contact details",
            "Book delivery",
        ],
    ),
    (
        "note",
        &[
            "Prefers delivery on Mondays",
            "New purchasing manager from next month",
            "Interested in service agreement",
        ],
    ),
];
