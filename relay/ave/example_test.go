package ave_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/relay/ave"
)

func ExampleNormalize() {
	body := []byte(`{"tipo":"json","body":[{"id_envio":"consecutivo123","cod_estado":4,
		"nombre_estado":"EN ENTREGA","fecha_estado":"2022-12-11 11:04:43","cod_novedad":"",
		"tipo_guia_reeemplazo":null,"observaciones":"no se encuentra la direcci\u00f3n"}]}`)
	trackings, err := ave.Normalize(body, ave.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := trackings[0].Event("shipments/tracking", time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.ID)
	fmt.Println(string(ev.Data))
	// Output:
	// evt_qdnneecvftm4b4kyyb3y7i5ncn
	// {"shipment_id":"consecutivo123","status":{"code":"4","name":"EN ENTREGA","at":"2022-12-11T11:04:43-05:00"},"notes":"no se encuentra la dirección"}
}

func ExampleValidationError() {
	body := []byte(`{"tipo":"json","body":[{"cod_estado":"4","nombre_estado":"EN ENTREGA",
		"fecha_estado":"11/12/2022","tipo_guia_reeemplazo":"DEV | REEMP"}]}`)
	_, err := ave.Normalize(body, ave.Options{})
	var ve *ave.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Printf("%s: %s\n", p.Pointer, p.Detail)
		}
	}
	// Output:
	// /body/0/id_envio: El campo id_envio es obligatorio
	// /body/0/fecha_estado: El campo fecha_estado debe tener el formato AAAA-MM-DD HH:MM:ss
	// /body/0/tipo_guia_reeemplazo: El campo tipo_guia_reeemplazo debe ser DEV, REEMP o CONT
}
