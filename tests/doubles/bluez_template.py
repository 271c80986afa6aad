"""python-dbusmock template: a fake BlueZ good enough for real bleak (scan and GATT).

Load it with `python -m dbusmock --system --template tests/doubles/bluez_template.py`.
It re-exports the stock `bluez5` template (adapters, agent manager, advertisement monitor
manager) and adds, on `org.bluez.Mock` at `/`:

- `AddLEDevice(adapter, address, name) -> path`: a Device1 whose ManufacturerData is typed
  `a{qv}` and ServiceData `a{sv}` (the stock AddDevice types them as arrays, which bleak
  rejects). Set its advertisement with `org.freedesktop.DBus.Mock.UpdateProperties` on the
  device path (RSSI, ManufacturerData, ServiceData, UUIDs, Name, Alias).
- `AddGattService(device, uuid) -> path`, `AddGattCharacteristic(service, uuid, flags, value)
  -> path`: GattService1 / GattCharacteristic1 objects announced with InterfacesAdded.
  ReadValue returns Value, WriteValue stores it (dbusmock emits `MethodCalled` on the
  characteristic's path, so the test can play the peripheral), Start/StopNotify flip
  `Notifying`.
- Device1 `Connect` sets Connected and then ServicesResolved (bleak waits for the latter),
  `Disconnect` clears both.
- `Notify(char, bytes)`: sets Value and emits PropertiesChanged (a notification for bleak).
- `Advertise()`: re-emits PropertiesChanged with RSSI, ManufacturerData and ServiceData of
  every LE device whose adapter exists, as BlueZ does per received advertisement. bleak only
  reports what arrives while it scans, so fixtures call this periodically.

This file is executed by dbusmock (not imported by the tests): keep it self-contained.
"""

# ruff: noqa: F403, F405

import dbus
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from dbusmock.templates.bluez5 import *  # the stock template: adapters, agents, monitors
from dbusmock.templates.bluez5 import load as _stock_load

GATT_SERVICE_IFACE = "org.bluez.GattService1"
GATT_CHARACTERISTIC_IFACE = "org.bluez.GattCharacteristic1"
ADVERTISED = ("RSSI", "ManufacturerData", "ServiceData")


def load(mock, parameters):
    _stock_load(mock, parameters)


def _emit_added(path, interface, props):
    mockobject.objects["/"].EmitSignal(
        OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
        [dbus.ObjectPath(path), {interface: props}],
    )


def _changed(obj, interface, props):
    for name, value in props.items():
        obj.props[interface][name] = value
    obj.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
                   [interface, dbus.Dictionary(props, signature="sv"),
                    dbus.Array([], signature="s")])


def _le_connect(device):
    props = device.props[DEVICE_IFACE]
    if props["Connected"]:
        raise dbus.exceptions.DBusException("Already Connected",
                                            name="org.bluez.Error.AlreadyConnected")
    _changed(device, DEVICE_IFACE, {"Connected": dbus.Boolean(True)})
    _changed(device, DEVICE_IFACE, {"ServicesResolved": dbus.Boolean(True)})


def _le_disconnect(device):
    props = device.props[DEVICE_IFACE]
    if not props["Connected"]:
        raise dbus.exceptions.DBusException("Not Connected", name="org.bluez.Error.NotConnected")
    _changed(device, DEVICE_IFACE, {"ServicesResolved": dbus.Boolean(False),
                                    "Connected": dbus.Boolean(False)})


@dbus.service.method(BLUEZ_MOCK_IFACE, in_signature="sss", out_signature="s")
def AddLEDevice(self, adapter_device_name, device_address, name):
    """Add an LE device with correctly typed advertisement properties; returns its path."""
    adapter_path = "/org/bluez/" + adapter_device_name
    if adapter_path not in mockobject.objects:
        raise dbus.exceptions.DBusException(f"Adapter {adapter_device_name} does not exist.",
                                            name=BLUEZ_MOCK_IFACE + ".NoSuchAdapter")
    path = adapter_path + "/dev_" + device_address.replace(":", "_").upper()
    props = {
        "Address": dbus.String(device_address),
        "AddressType": dbus.String("public"),
        "Name": dbus.String(name),
        "Alias": dbus.String(name or device_address.replace(":", "-")),
        "Adapter": dbus.ObjectPath(adapter_path),
        "Appearance": dbus.UInt16(0),
        "UUIDs": dbus.Array([], signature="s"),
        "Paired": dbus.Boolean(False),
        "Bonded": dbus.Boolean(False),
        "Connected": dbus.Boolean(False),
        "Trusted": dbus.Boolean(False),
        "Blocked": dbus.Boolean(False),
        "LegacyPairing": dbus.Boolean(False),
        "ServicesResolved": dbus.Boolean(False),
        "RSSI": dbus.Int16(-60),
        "TxPower": dbus.Int16(0),
        "ManufacturerData": dbus.Dictionary({}, signature="qv"),
        "ServiceData": dbus.Dictionary({}, signature="sv"),
    }
    if not name:
        del props["Name"]
    self.AddObject(path, DEVICE_IFACE, props, [
        ("Connect", "", "", _le_connect),
        ("Disconnect", "", "", _le_disconnect),
        ("Pair", "", "", ""),
        ("CancelPairing", "", "", ""),
    ])
    device = mockobject.objects[path]
    device.le = True
    _emit_added(path, DEVICE_IFACE, props)
    return path


@dbus.service.method(BLUEZ_MOCK_IFACE, in_signature="os", out_signature="s")
def AddGattService(self, device_path, uuid):
    """Add a primary GATT service to a device; returns its path (…/serviceXXXX)."""
    device_path = str(device_path)
    if device_path not in mockobject.objects:
        raise dbus.exceptions.DBusException(f"no device {device_path}",
                                            name=BLUEZ_MOCK_IFACE + ".NoSuchDevice")
    handle = _next_handle(device_path)
    path = f"{device_path}/service{handle:04x}"
    props = {
        "UUID": dbus.String(uuid),
        "Device": dbus.ObjectPath(device_path),
        "Primary": dbus.Boolean(True),
        "Includes": dbus.Array([], signature="o"),
    }
    self.AddObject(path, GATT_SERVICE_IFACE, props, [])
    _emit_added(path, GATT_SERVICE_IFACE, props)
    return path


def _read_value(char, options):
    return dbus.Array(char.props[GATT_CHARACTERISTIC_IFACE]["Value"], signature="y")


def _write_value(char, value, options):
    char.props[GATT_CHARACTERISTIC_IFACE]["Value"] = dbus.Array(value, signature="y")


def _start_notify(char):
    _changed(char, GATT_CHARACTERISTIC_IFACE, {"Notifying": dbus.Boolean(True)})


def _stop_notify(char):
    _changed(char, GATT_CHARACTERISTIC_IFACE, {"Notifying": dbus.Boolean(False)})


@dbus.service.method(BLUEZ_MOCK_IFACE, in_signature="osasay", out_signature="s")
def AddGattCharacteristic(self, service_path, uuid, flags, value):
    """Add a characteristic (flags like ["read", "write", "notify"]); returns its path."""
    service_path = str(service_path)
    if service_path not in mockobject.objects:
        raise dbus.exceptions.DBusException(f"no service {service_path}",
                                            name=BLUEZ_MOCK_IFACE + ".NoSuchService")
    device_path = service_path.rsplit("/", 1)[0]
    handle = _next_handle(device_path)
    path = f"{service_path}/char{handle:04x}"
    props = {
        "UUID": dbus.String(uuid),
        "Service": dbus.ObjectPath(service_path),
        "Value": dbus.Array(bytes(value), signature="y"),
        "Notifying": dbus.Boolean(False),
        "Flags": dbus.Array([str(f) for f in flags], signature="s"),
        "MTU": dbus.UInt16(23),
    }
    self.AddObject(path, GATT_CHARACTERISTIC_IFACE, props, [
        ("ReadValue", "a{sv}", "ay", _read_value),
        ("WriteValue", "aya{sv}", "", _write_value),
        ("StartNotify", "", "", _start_notify),
        ("StopNotify", "", "", _stop_notify),
    ])
    _emit_added(path, GATT_CHARACTERISTIC_IFACE, props)
    return path


@dbus.service.method(BLUEZ_MOCK_IFACE, in_signature="oay", out_signature="")
def Notify(self, char_path, value):
    """Set a characteristic's Value and emit PropertiesChanged: a notification for bleak."""
    char = mockobject.objects[str(char_path)]
    _changed(char, GATT_CHARACTERISTIC_IFACE, {"Value": dbus.Array(bytes(value), signature="y")})


@dbus.service.method(BLUEZ_MOCK_IFACE, in_signature="", out_signature="u")
def Advertise(self):
    """Re-emit every LE device's advertisement (of live adapters); returns how many."""
    count = 0
    for path, obj in list(mockobject.objects.items()):
        if not getattr(obj, "le", False):
            continue
        props = obj.props.get(DEVICE_IFACE, {})
        if str(props.get("Adapter")) not in mockobject.objects:
            continue
        obj.EmitSignal(dbus.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as", [
            DEVICE_IFACE,
            dbus.Dictionary({k: props[k] for k in ADVERTISED if k in props}, signature="sv"),
            dbus.Array([], signature="s"),
        ])
        count += 1
        del path
    return dbus.UInt32(count)


_handles = {}


def _next_handle(device_path):
    _handles[device_path] = _handles.get(device_path, 0) + 0x10
    return _handles[device_path]
