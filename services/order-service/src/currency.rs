//! The currencies an order may be placed in: the active ISO 4217 codes of
//! money (list one of the standard), without fund codes, precious metals,
//! SDRs and testing codes, which no shop prices in. Withdrawn codes (HRK,
//! SLL, CUC, ZWL, BGN after Bulgaria's move to the euro, ANG after its
//! replacement by XCG) are refused.

/// Sorted, so a lookup is a binary search.
const CODES: [&str; 155] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF", "BMD",
    "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL",
    "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR",
    "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR",
    "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD",
    "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF",
    "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is a currency an order may use.
pub fn is_known(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_unique_so_the_search_finds_every_code() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]), "CODES must be sorted without repeats");
        assert!(CODES.iter().all(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase())));
        assert!(CODES.iter().all(|c| is_known(c)));
    }

    #[test]
    fn money_yes_withdrawn_and_non_money_no() {
        for code in ["EUR", "USD", "JPY", "GBP", "CHF", "XOF", "ZWG"] {
            assert!(is_known(code), "{code}");
        }
        for code in ["ABC", "HRK", "SLL", "XAU", "XXX", "XTS", "eur", "EURO", ""] {
            assert!(!is_known(code), "{code}");
        }
    }
}
