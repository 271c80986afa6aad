// A Matter device written with matter.js (foreign code, @matter/main from npm), run in the
// device network namespace by tests/doubles/matter.py.
//   node matter_device.mjs KIND PORT DISCRIMINATOR PASSCODE
// KIND: onoff | dimmable | contact | thermostat. Storage: MATTER_STORAGE_PATH (kept across a
// restart, so the device stays commissioned). Prints JSON lines on stdout ({"ready": {...}}
// with its pairing codes, then {"done": true} or {"error": ...} per request); reads JSON
// lines on stdin to change its own state as a person at the device would
// ({"set": {"onOff": {"onOff": true}}}).
import { ServerNode, VendorId } from "@matter/main";
import { OnOffLightDevice } from "@matter/main/devices/on-off-light";
import { DimmableLightDevice } from "@matter/main/devices/dimmable-light";
import { ContactSensorDevice } from "@matter/main/devices/contact-sensor";
import { ThermostatDevice } from "@matter/main/devices/thermostat";
import { ThermostatServer } from "@matter/main/behaviors/thermostat";
import { Thermostat } from "@matter/main/clusters/thermostat";
import { createInterface } from "node:readline";

const [kind, port, discriminator, passcode] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const types = {
  onoff: OnOffLightDevice,
  dimmable: DimmableLightDevice,
  contact: ContactSensorDevice,
  thermostat: ThermostatDevice.with(ThermostatServer.with(Thermostat.Feature.Heating)),
};
const type = types[kind];
if (!type) { console.error(`unknown kind ${kind}`); process.exit(2); }

const node = await ServerNode.create({
  id: `uone-${kind}`,
  network: { port: Number(port) },
  commissioning: { passcode: Number(passcode), discriminator: Number(discriminator) },
  productDescription: { name: `Uone ${kind}`, deviceType: type.deviceType },
  basicInformation: {
    vendorName: "matter-js", vendorId: VendorId(0xfff1), productName: `Test ${kind}`,
    productId: 0x8000, serialNumber: `uone-${kind}`, nodeLabel: `Uone ${kind}`,
    uniqueId: `uone-${kind}`,
  },
});
const options = kind === "thermostat"
  ? { thermostat: { localTemperature: 2000, occupiedHeatingSetpoint: 2100, systemMode: 4,
                    controlSequenceOfOperation: 2 } }
  : {};
const endpoint = await node.add(type, { id: "main", ...options });
createInterface({ input: process.stdin }).on("line", async (line) => {
  try {
    const msg = JSON.parse(line);
    if (msg.set) { await endpoint.set(msg.set); say({ done: true }); }
  } catch (e) { say({ error: String(e) }); }
});
const codes = node.state.commissioning.pairingCodes;
node.lifecycle.online.on(() => say({
  ready: { manual: codes.manualPairingCode, qr: codes.qrPairingCode,
           commissioned: node.state.commissioning.commissioned },
}));
await node.run();
