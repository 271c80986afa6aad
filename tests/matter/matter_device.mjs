// A Matter device written with matter.js (foreign code, @matter/main from npm), run in the
// device network namespace by tests/doubles/matter.py.
//   node matter_device.mjs KIND PORT DISCRIMINATOR PASSCODE
// KIND: onoff | dimmable | contact | thermostat | color | lock | cover | switch. Storage: MATTER_STORAGE_PATH (kept across a
// restart, so the device stays commissioned). Prints JSON lines on stdout ({"ready": {...}}
// with its pairing codes, then {"done": true} or {"error": ...} per request); reads JSON
// lines on stdin to change its own state as a person at the device would
// ({"set": {"onOff": {"onOff": true}}}), or to read it back ({"get": "windowCovering"} ->
// {"done": true, "state": {...}}).
import { ServerNode, VendorId } from "@matter/main";
import { OnOffLightDevice } from "@matter/main/devices/on-off-light";
import { DimmableLightDevice } from "@matter/main/devices/dimmable-light";
import { ContactSensorDevice } from "@matter/main/devices/contact-sensor";
import { ThermostatDevice } from "@matter/main/devices/thermostat";
import { ThermostatServer } from "@matter/main/behaviors/thermostat";
import { Thermostat } from "@matter/main/clusters/thermostat";
import { ExtendedColorLightDevice } from "@matter/main/devices/extended-color-light";
import { ColorControlServer } from "@matter/main/behaviors/color-control";
import { DoorLockDevice } from "@matter/main/devices/door-lock";
import { WindowCoveringDevice } from "@matter/main/devices/window-covering";
import { WindowCoveringServer } from "@matter/main/behaviors/window-covering";
import { GenericSwitchDevice } from "@matter/main/devices/generic-switch";
import { SwitchServer } from "@matter/main/behaviors/switch";
import { createInterface } from "node:readline";

const [kind, port, discriminator, passcode] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// A cover whose motor takes time (5 % of travel per 100 ms), so that StopMotion has something
// to stop. matter.js's default jumps to the target at once.
let motion = null;
function stopMotion() { if (motion) { clearInterval(motion); motion = null; } }
class MovingCover extends WindowCoveringServer {
  handleMovement(type, reversed, direction, target) {
    stopMotion();
    if (target === undefined) target = direction === 1 ? 10000 : 0;  // Close : Open
    motion = setInterval(async () => {
      const now = endpoint.state.windowCovering.currentPositionLiftPercent100ths ?? 0;
      const next = now < target ? Math.min(target, now + 500) : Math.max(target, now - 500);
      if (next === target) stopMotion();
      await endpoint.set({ windowCovering: { currentPositionLiftPercent100ths: next } });
    }, 100);
  }
  handleStopMovement() { stopMotion(); return super.handleStopMovement(); }
}

const types = {
  onoff: OnOffLightDevice,
  dimmable: DimmableLightDevice,
  contact: ContactSensorDevice,
  thermostat: ThermostatDevice.with(ThermostatServer.with(Thermostat.Feature.Heating)),
  color: ExtendedColorLightDevice.with(
    ColorControlServer.with("HueSaturation", "Xy", "ColorTemperature")),
  lock: DoorLockDevice,
  cover: WindowCoveringDevice.with(MovingCover.with("Lift", "PositionAwareLift")),
  // a push button: press and release events, long press, double press
  switch: GenericSwitchDevice.with(SwitchServer.with(
    "MomentarySwitch", "MomentarySwitchRelease", "MomentarySwitchLongPress",
    "MomentarySwitchMultiPress")),
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
const options = {
  thermostat: { thermostat: { localTemperature: 2000, occupiedHeatingSetpoint: 2100,
                              systemMode: 4, controlSequenceOfOperation: 2 } },
  color: { colorControl: { colorMode: 2, enhancedColorMode: 2, colorTemperatureMireds: 250, colorTempPhysicalMinMireds: 153,
                           colorTempPhysicalMaxMireds: 500, coupleColorTempToLevelMinMireds: 153,
                           startUpColorTemperatureMireds: null } },
  lock: { doorLock: { lockState: 2, lockType: 0, actuatorEnabled: true, operatingMode: 0,
                      wrongCodeEntryLimit: 5, userCodeTemporaryDisableTime: 10 } },
  cover: { windowCovering: { type: 0, endProductType: 0, currentPositionLiftPercent100ths: 0,
                             targetPositionLiftPercent100ths: 0 } },
  switch: { switch: { numberOfPositions: 2, currentPosition: 0, multiPressMax: 2 } },
}[kind] ?? {};
const endpoint = await node.add(type, { id: "main", ...options });
createInterface({ input: process.stdin }).on("line", async (line) => {
  try {
    const msg = JSON.parse(line);
    if (msg.set) { await endpoint.set(msg.set); say({ done: true }); }
    else if (msg.get) say({ done: true, state: endpoint.state[msg.get] });
  } catch (e) { say({ error: String(e) }); }
});
const codes = node.state.commissioning.pairingCodes;
node.lifecycle.online.on(() => say({
  ready: { manual: codes.manualPairingCode, qr: codes.qrPairingCode,
           commissioned: node.state.commissioning.commissioned },
}));
await node.run();
