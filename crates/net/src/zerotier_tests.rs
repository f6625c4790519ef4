//! Unit tests of the ZeroTier client: validation and parsing.
use super::*;

#[test]
fn network_ids_are_sixteen_hex_digits() {
    assert_eq!(
        NetworkId::parse(" 8056C2E21C000001\n").unwrap().as_str(),
        "8056c2e21c000001"
    );
    for bad in [
        "",
        "8056c2e21c00000",
        "8056c2e21c0000011",
        "8056c2e21c00000g",
        "../../status?x=1",
        "8056c2e2 1c000001",
        "８056c2e21c000001",
    ] {
        let e = NetworkId::parse(bad).unwrap_err();
        assert!(matches!(e, ZeroTierError::InvalidNetworkId(_)), "{bad:?}");
        assert!(e.to_string().contains("16 characters"), "{e}");
    }
    // What is echoed back is short and has no control characters.
    let long = format!("{}\u{7}", "x".repeat(500));
    let ZeroTierError::InvalidNetworkId(shown) = NetworkId::parse(&long).unwrap_err() else {
        panic!("not an invalid ID")
    };
    assert_eq!(shown, "x".repeat(40));
}

#[test]
fn node_status_parses_from_the_published_example() {
    let raw = br#"{"address":"1a2b3c4d5e","clock":1700000000000,"config":{"settings":{"primaryPort":9993}},
        "online":true,"planetWorldId":149604618,"publicIdentity":"1a2b3c4d5e:0:abcd",
        "tcpFallbackActive":false,"version":"1.14.2","versionBuild":0,"versionMajor":1,
        "versionMinor":14,"versionRev":2}"#;
    let s: NodeStatus = parse(raw).unwrap();
    assert_eq!(s.address, "1a2b3c4d5e");
    assert!(s.online && !s.tcp_fallback_active);
    assert_eq!(s.version, "1.14.2");
}

#[test]
fn networks_parse_with_every_status_and_missing_fields() {
    let raw = br#"[{"id":"8056c2e21c000001","nwid":"8056c2e21c000001","name":"home",
        "status":"OK","type":"PRIVATE","mac":"aa:bb:cc:dd:ee:ff","mtu":2800,
        "assignedAddresses":["10.147.17.23/24","fd80::1/88"],"portDeviceName":"ztabc",
        "routes":[{"target":"10.147.17.0/24","via":null,"flags":0,"metric":0}]},
        {"id":"0123456789abcdef","status":"REQUESTING_CONFIGURATION"},
        {"id":"0123456789abcde0","status":"SOMETHING_NEW","type":"PUBLIC"}]"#;
    let list: Vec<Network> = parse(raw).unwrap();
    assert_eq!(list[0].status, NetworkStatus::Ok);
    assert_eq!(
        list[0].assigned_addresses,
        ["10.147.17.23/24", "fd80::1/88"]
    );
    assert_eq!(list[0].port_device_name, "ztabc");
    assert!(!list[0].is_public());
    assert!(list[1].status.is_pending() && list[1].assigned_addresses.is_empty());
    assert_eq!(list[2].status, NetworkStatus::Other("SOMETHING_NEW".into()));
    assert!(list[2].is_public());
    for (s, words) in [
        ("ACCESS_DENIED", "authorise"),
        ("NOT_FOUND", "No such network"),
        ("PORT_ERROR", "interface"),
        ("CLIENT_TOO_OLD", "newer"),
        ("OK", "Connected"),
    ] {
        assert!(
            NetworkStatus::from(s.to_string())
                .describe()
                .contains(words),
            "{s}"
        );
    }
    assert!(parse::<Vec<Network>>(b"").unwrap_err().contains("empty"));
    assert!(
        parse::<Vec<Network>>(b"<html>")
            .unwrap_err()
            .contains("JSON")
    );
    assert!(parse::<NodeStatus>(br#"{"online":true}"#).is_err());
}

#[test]
fn only_loopback_http_is_accepted_as_the_api() {
    for ok in [
        "http://127.0.0.1:9993",
        "http://localhost:9993/",
        "http://[::1]:9993",
        "http://127.0.0.2:1234",
    ] {
        assert!(parse_base(ok).unwrap().path().ends_with('/'), "{ok}");
    }
    for bad in [
        "https://127.0.0.1:9993",
        "http://192.168.1.2:9993",
        "http://example.com:9993",
        "http://user:pw@127.0.0.1:9993",
        "http://127.0.0.1:9993/?auth=x",
        "127.0.0.1:9993",
        "",
    ] {
        assert!(
            matches!(parse_base(bad), Err(ZeroTierError::BadConfig(_))),
            "{bad}"
        );
    }
}

#[test]
fn tokens_are_trimmed_and_hidden() {
    let v = token_header(b"abcdefghijklmnopqrstuvwx\n").unwrap();
    assert_eq!(v.to_str().unwrap(), "abcdefghijklmnopqrstuvwx");
    assert!(v.is_sensitive());
    assert!(token_header(b"  \n").is_none());
    assert!(token_header(b"a\nb").is_none());
    assert!(token_header(&[0xff, 0xfe]).is_none());
}

#[tokio::test]
async fn a_missing_service_or_token_is_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("authtoken.secret");
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let zt = ZeroTier::new(&format!("http://127.0.0.1:{port}"), &token).unwrap();

    let e = zt.node_status().await.unwrap_err();
    assert!(
        matches!(e, ZeroTierError::NotInstalled(_)) && e.is_absent(),
        "{e}"
    );

    std::fs::write(&token, "secret-token\n").unwrap();
    let e = zt.node_status().await.unwrap_err();
    assert!(
        matches!(e, ZeroTierError::NotRunning(_)) && e.is_absent(),
        "{e}"
    );
    assert!(!e.to_string().contains("secret-token"));

    std::fs::write(&token, "\n").unwrap();
    let e = zt.networks().await.unwrap_err();
    assert!(matches!(e, ZeroTierError::TokenUnreadable { .. }), "{e}");
    assert!(!e.is_absent());
}
