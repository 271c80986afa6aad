"""Discovery: finding devices on the LAN (mDNS) and over BLE, and adopting them.

- `service.DiscoveryService` (`hub.discovery`): dedupe, matching, dispatch, adoption, health.
- `matcher.MatcherIndex`: one index over every manifest's BLE matchers and mDNS types.
- `ble.BleScanner`: the one bleak scanner, with loss detection and restart backoff.
- `mdns.MdnsDiscovery`: the one AsyncZeroconf, browsing and the hub's own advertisement.
- `registry.DiscoveredRegistry`: discovered devices and the owner's persisted decisions.
- `connectivity`: LAN/BLE transport choice with a reason. `models`: the value types/events.
See docs/discovery.md.
"""
